#pragma once
/// \file transformer.hpp
/// Transformer layers with PyTorch's parameter names and mask semantics, and a GPT (nanoGPT's
/// architecture) with key/value-cached generation:
///
///     nn::GPT model(nn::GPTConfig{.vocab_size = 65, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128});
///     Tensor logits = model.forward(x);                      // x int64 [B, T] -> [B, T, vocab_size]
///     Tensor loss = nn::GPT::loss(logits, y);                // cross-entropy over [B·T, vocab_size]
///     model.eval();
///     Tensor out = model.generate(prompt, 100, 0.8, 10, gen);  // prompt [B, T0] -> [B, T0 + 100]
///
/// Masks follow PyTorch's nn.MultiheadAttention: bool (true = masked OUT, the opposite of
/// F::scaled_dot_product_attention's bool mask) or additive and floating of the query's dtype (0
/// keeps a score, −∞ removes it; other values are added to the score). Everything here works in
/// float32 and float64: the dtype is the parameters'.
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/random.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "nn/norm.hpp"
#include "nn/options.hpp"

namespace tapegrad::nn {

/// Options of MultiheadAttention (PyTorch's constructor arguments; kdim/vdim, add_bias_kv and
/// add_zero_attn are not offered: keys and values have the query's width).
struct MultiheadAttentionOptions {
  /// The two required sizes; the other options keep PyTorch's defaults.
  MultiheadAttentionOptions(int64_t embed_dim, int64_t num_heads) : embed_dim_(embed_dim), num_heads_(num_heads) {}
  TAPEGRAD_LAYER_ARG(int64_t, embed_dim, 0)     ///< E, the model width; a multiple of num_heads
  TAPEGRAD_LAYER_ARG(int64_t, num_heads, 1)     ///< H; each head has width d = E / H
  TAPEGRAD_LAYER_ARG(double, dropout, 0.0)      ///< dropout on the attention weights (training only)
  TAPEGRAD_LAYER_ARG(bool, bias, true)          ///< in_proj_bias and out_proj.bias
  TAPEGRAD_LAYER_ARG(bool, batch_first, false)  ///< inputs [N, L, E] instead of PyTorch's default [L, N, E]
};

/// What MultiheadAttention::forward returns: the output (the query's layout) and, when asked for,
/// the attention weights averaged over the heads, [N, L, S] (after dropout, as PyTorch).
struct AttentionResult {
  Tensor output;   ///< [L, N, E], or [N, L, E] when batch_first
  Tensor weights;  ///< [N, L, S] when need_weights, else undefined
};

/// The keys and values of the tokens an attention layer has seen, [N, H, T, d] each (undefined when
/// empty), for incremental decoding: a new token's query attends to them without recomputing them.
struct KVCache {
  /// [N, H, T, d]: the cached keys and values (both undefined when empty)
  ///@{
  Tensor key, value;
  ///@}
  /// T, the number of cached positions.
  int64_t length() const { return key.defined() ? key.size(2) : 0; }
  /// Empties the cache (a new sequence starts).
  void clear() { key = value = Tensor(); }
};

/// PyTorch's nn.MultiheadAttention. With query [L, N, E] and key, value [S, N, E] (or [N, L, E],
/// [N, S, E] when batch_first):
///     [q | k | v] = projections by in_proj_weight [3E, E] and in_proj_bias [3E]
///     head_h = softmax(q_h·k_hᵀ / √d + mask) · v_h        (d = E / H)
///     output = concat_h(head_h) · out_projᵀ + out_proj.bias
/// Parameters (PyTorch's names and initialisation): in_proj_weight (Xavier uniform), in_proj_bias
/// (zeros), out_proj.weight (Linear's default), out_proj.bias (zeros).
class MultiheadAttention : public UnaryModule {
 public:
  /// Throws std::invalid_argument when embed_dim is not a positive multiple of num_heads or dropout
  /// is outside [0, 1). Dropout masks come from `gen` (it must outlive the layer).
  explicit MultiheadAttention(const MultiheadAttentionOptions& options, Generator& gen = default_generator());
  /// MultiheadAttentionOptions(embed_dim, num_heads) with the other options' defaults; throws as above.
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, Generator& gen = default_generator())
      : MultiheadAttention(MultiheadAttentionOptions(embed_dim, num_heads), gen) {}

  /// Self-attention without a mask: forward(x, x, x).output.
  Tensor forward(const Tensor& x) override;
  /// Attention of `query` over `key`/`value` (shapes above). Masks are additive, of the query's
  /// dtype: `attn_mask` [L, S] or [N·H, L, S]; `key_padding_mask` [N, S] (PyTorch's float
  /// key_padding_mask, added to every query's scores). `is_causal` adds −∞ above the diagonal
  /// (query i sees keys j ≤ i + S − L, so the last query sees every key). `need_weights` fills
  /// AttentionResult::weights (PyTorch's default is true, here false: the weights cost an extra
  /// reduction). Throws ShapeError / DTypeError naming the module and the shapes, before
  /// recording anything.
  AttentionResult forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const Tensor& attn_mask = Tensor(), const Tensor& key_padding_mask = Tensor(),
                          bool need_weights = false, bool is_causal = false);
  /// Causal self-attention of new positions `x` (the layout above, T new positions) that attend to
  /// the `cache` and to themselves: their keys and values are appended to the cache (so a new
  /// token costs O(T_cached), not a forward over the prefix). The result equals the last T
  /// positions of a causal forward over the cached prefix followed by x.
  Tensor forward_cached(const Tensor& x, KVCache& cache);
  /// The checks of forward: throws what forward(query, key, value, attn_mask, key_padding_mask)
  /// would throw for these inputs, computes and records nothing.
  void check_inputs(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask = Tensor(),
                    const Tensor& key_padding_mask = Tensor()) const;

  std::string repr() const override;
  /// The options the layer was built with.
  const MultiheadAttentionOptions& options() const { return options_; }

  /// [3E, E] and [3E] (undefined without bias): rows q, k, v
  ///@{
  Tensor in_proj_weight, in_proj_bias;
  ///@}
  std::shared_ptr<Linear> out_proj;     ///< E → E

 private:
  /// q, k, v [N, H, T, d] of x [N, T, E] (batch-first), with one projection by in_proj.
  std::tuple<Tensor, Tensor, Tensor> project_self(const Tensor& x);
  /// out_proj of the heads [N, H, L, d] put side by side: [N, L, E].
  Tensor merge_heads(const Tensor& heads);
  /// Projects and attends; inputs checked and batch-first. `causal`: PyTorch's top-left causal mode
  /// of the fused op (used when L = S and there is no other mask).
  AttentionResult attend(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask,
                         bool need_weights, bool causal);
  MultiheadAttentionOptions options_;
  Generator* gen_;
};

/// Learned absolute positions: adds weight[offset + t] to position t of x [N, T, D]; weight
/// [max_length, D] ~ N(0, 1) (nn.Embedding's initialisation; a GPT re-initialises it).
class PositionalEmbedding : public UnaryModule {
 public:
  /// weight [max_length, embedding_dim] drawn from N(0, 1) with `gen`; throws std::invalid_argument
  /// unless both sizes are positive.
  PositionalEmbedding(int64_t max_length, int64_t embedding_dim, Generator& gen = default_generator());
  /// x + weight[0:T].
  Tensor forward(const Tensor& x) override { return forward(x, 0); }
  /// x + weight[offset : offset + T]; throws ShapeError when offset + T > max_length.
  Tensor forward(const Tensor& x, int64_t offset);
  std::string repr() const override;
  Tensor weight;  ///< [max_length, embedding_dim], the parameter "weight"
};

/// Activations of TransformerEncoderLayer's feed-forward block.
enum class Activation {
  relu,  ///< max(x, 0), PyTorch's default
  gelu,  ///< x·Φ(x), the exact (erf) form
};

/// Options of TransformerEncoderLayer (PyTorch's constructor arguments and defaults).
struct TransformerEncoderLayerOptions {
  /// The two required sizes; the other options keep PyTorch's defaults.
  TransformerEncoderLayerOptions(int64_t d_model, int64_t nhead) : d_model_(d_model), nhead_(nhead) {}
  TAPEGRAD_LAYER_ARG(int64_t, d_model, 0)             ///< E, the model width; a multiple of nhead
  TAPEGRAD_LAYER_ARG(int64_t, nhead, 1)               ///< H, the attention heads
  TAPEGRAD_LAYER_ARG(int64_t, dim_feedforward, 2048)  ///< width of linear1's output, > 0
  TAPEGRAD_LAYER_ARG(double, dropout, 0.1)  ///< p of the attention weights' and the three Dropouts, in [0, 1)
  TAPEGRAD_LAYER_ARG(Activation, activation, Activation::relu)  ///< gelu is the exact form, as PyTorch's "gelu"
  TAPEGRAD_LAYER_ARG(double, layer_norm_eps, 1e-5)  ///< ε of norm1 and norm2
  TAPEGRAD_LAYER_ARG(bool, batch_first, false)      ///< src [N, L, E] instead of [L, N, E]
  TAPEGRAD_LAYER_ARG(bool, norm_first, false)  ///< pre-LayerNorm when true
};

/// PyTorch's nn.TransformerEncoderLayer:
///     post-norm: x = norm1(x + sa(x)); x = norm2(x + ff(x))
///     pre-norm:  x = x + sa(norm1(x)); x = x + ff(norm2(x))
///     sa(x) = dropout1(self_attn(x, x, x)),  ff(x) = dropout2(linear2(dropout(act(linear1(x)))))
/// Parameters self_attn.*, linear1.*, linear2.*, norm1.*, norm2.* as in PyTorch.
class TransformerEncoderLayer : public UnaryModule {
 public:
  /// Throws std::invalid_argument when dim_feedforward ≤ 0, or as MultiheadAttention's constructor
  /// (d_model not a positive multiple of nhead, dropout outside [0, 1)). Initialisation and dropout
  /// masks come from `gen`.
  explicit TransformerEncoderLayer(const TransformerEncoderLayerOptions& options, Generator& gen = default_generator());
  /// Without masks.
  Tensor forward(const Tensor& src) override { return forward(src, Tensor()); }
  /// With an additive `src_mask` ([L, L] or [N·H, L, L]) and `src_key_padding_mask` [N, L]; see
  /// MultiheadAttention::forward.
  Tensor forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask = Tensor(),
                 bool is_causal = false);
  std::string repr() const override;
  /// The options the layer was built with.
  const TransformerEncoderLayerOptions& options() const { return options_; }

  std::shared_ptr<MultiheadAttention> self_attn;  ///< sa's attention, E → E
  /// Ff's E → dim_feedforward and back
  ///@{
  std::shared_ptr<Linear> linear1, linear2;
  ///@}
  /// Inside ff, after sa, after ff
  ///@{
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;
  ///@}
  /// Over the last dimension E, eps layer_norm_eps
  ///@{
  std::shared_ptr<LayerNorm> norm1, norm2;
  ///@}

 private:
  TransformerEncoderLayerOptions options_;
};

/// A GPT's sizes (nanoGPT's GPTConfig; the defaults are its CPU "baby GPT" with a byte-sized vocabulary).
struct GPTConfig {
  int64_t vocab_size = 65;  ///< V: token ids are in [0, V)
  int64_t block_size = 64;  ///< the longest context
  int64_t n_layer = 4;      ///< number of GPTBlocks
  int64_t n_head = 4;       ///< attention heads per block; divides n_embd
  int64_t n_embd = 128;     ///< E, the width of the residual stream
  double dropout = 0.0;     ///< p of every dropout (embeddings, attention, residuals), in [0, 1)
  bool bias = true;  ///< biases in the Linear layers, attention and LayerNorms
};

/// GPT-2's feed-forward block: c_proj(gelu_tanh(c_fc(x))), widths E → 4E → E, then dropout.
class GPTMLP : public UnaryModule {
 public:
  /// c_fc (n_embd → 4·n_embd) and c_proj (4·n_embd → n_embd), with biases when config.bias;
  /// initialisation and dropout masks from `gen`. The sizes are checked by GPT's constructor.
  GPTMLP(const GPTConfig& config, Generator& gen = default_generator());
  /// x [..., E] → [..., E]; dropout only in training mode.
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "GPTMLP"; }
  /// E → 4E and 4E → E
  ///@{
  std::shared_ptr<Linear> c_fc, c_proj;
  ///@}

 private:
  double dropout_;
  Generator* gen_;
};

/// A pre-LayerNorm decoder block (GPT-2, nanoGPT), batch-first [N, T, E]:
///     x = x + dropout(attn(ln_1(x)))   (causal self-attention)
///     x = x + mlp(ln_2(x))
/// Submodules ln_1, attn (MultiheadAttention, batch_first), ln_2, mlp (c_fc, c_proj). A LayerNorm
/// has weight and bias, or only weight when config.bias is false (nanoGPT's LayerNorm).
class GPTBlock : public UnaryModule {
 public:
  /// The block of a GPT with `config` (sizes checked by GPT's constructor); initialisation and
  /// dropout masks from `gen`.
  GPTBlock(const GPTConfig& config, Generator& gen = default_generator());
  /// Causal over the whole input.
  Tensor forward(const Tensor& x) override;
  /// The last positions `x` after the cached ones (MultiheadAttention::forward_cached).
  Tensor forward_cached(const Tensor& x, KVCache& cache);
  /// forward(x), also setting `weights` to the attention weights [N, T, T], averaged over the
  /// heads (MultiheadAttention's need_weights: the composite path that materialises them).
  Tensor forward_with_weights(const Tensor& x, Tensor& weights);
  std::string repr() const override { return "GPTBlock"; }
  /// LayerNorms over E before attn and before mlp
  ///@{
  UnaryModulePtr ln_1, ln_2;
  ///@}
  std::shared_ptr<MultiheadAttention> attn;  ///< causal self-attention, batch_first
  std::shared_ptr<GPTMLP> mlp;               ///< the feed-forward block

 private:
  /// forward, with the attention weights in `weights` when `need_weights`.
  Tensor run(const Tensor& x, bool need_weights, Tensor& weights);
  double dropout_;
  Generator* gen_;
};

/// One KVCache per block, and the number of positions they hold.
struct GPTCache {
  std::vector<KVCache> layers;  ///< one per block, filled by GPT::forward_cached
  /// The number of cached positions (0 when empty).
  int64_t length() const { return layers.empty() ? 0 : layers[0].length(); }
  /// Empties the cache (a new sequence starts).
  void clear() { layers.clear(); }
};

/// A GPT language model (nanoGPT's, with torch.nn.MultiheadAttention's parameter names):
///     x = dropout(wte(idx) + wpe(positions)); x = h.0(x) … h.{n_layer−1}(x); logits = lm_head(ln_f(x))
/// State dict keys: wte.weight, wpe.weight, `h.<i>.{ln_1, attn, ln_2, mlp}.*`, ln_f.*, lm_head.weight.
/// lm_head [vocab_size, n_embd] has no bias and is NOT tied to wte (untied weights save and load as
/// separate tensors). Initialisation as nanoGPT: every Linear weight, in_proj_weight and both
/// embeddings ~ N(0, 0.02²), the residual projections (attn.out_proj.weight, mlp.c_proj.weight)
/// ~ N(0, (0.02/√(2·n_layer))²), biases 0, LayerNorms 1 and 0.
class GPT : public UnaryModule {
 public:
  /// Throws std::invalid_argument for non-positive sizes or n_embd not a multiple of n_head.
  explicit GPT(const GPTConfig& config, Generator& gen = default_generator());
  /// Logits [N, T, vocab_size] of int64 tokens idx [N, T], 1 ≤ T ≤ block_size (else ShapeError
  /// naming GPT and the shape).
  Tensor forward(const Tensor& idx) override;
  /// Logits [N, T, vocab_size] of new tokens idx [N, T] that follow the `cache`'s positions (whose
  /// keys and values they read and extend). The cache's length plus T must not exceed block_size.
  Tensor forward_cached(const Tensor& idx, GPTCache& cache);
  /// The attention maps of tokens idx [N, T], recording off: one [N, T, T] per block, row i the
  /// weights query position i gives the keys j ≤ i, averaged over the heads (for inspection:
  /// examples/explain draws them).
  std::vector<Tensor> attention_maps(const Tensor& idx);
  /// Mean cross-entropy of logits [N, T, V] against int64 targets [N, T], over the flattened
  /// [N·T, V] (nanoGPT's loss).
  static Tensor loss(const Tensor& logits, const Tensor& targets);
  /// Extends idx [N, T0] (int64) by max_new_tokens tokens, each drawn by sample_logits from the
  /// logits of the last position, with recording off (nanoGPT's generate; call eval() first when
  /// the model has dropout). The context is the last block_size tokens.
  /// With `use_cache`, the prompt is encoded once and each new token runs one query per layer
  /// against the cached keys and values: O(t) per token. When the cache holds block_size positions,
  /// the window slides and every position's embedding changes (positions are absolute), so the
  /// last block_size tokens are re-encoded from scratch: past block_size, a token costs one full
  /// forward over the window, as without the cache. The tokens do not depend on `use_cache`.
  Tensor generate(const Tensor& idx, int64_t max_new_tokens, double temperature = 1.0, int64_t top_k = 0,
                  Generator& gen = default_generator(), bool use_cache = true);
  std::string repr() const override { return "GPT"; }
  /// The configuration the model was built with.
  const GPTConfig& config() const { return config_; }
  /// Activation checkpointing of the blocks (autograd/checkpoint.hpp): when on, forward runs each
  /// block through tapegrad::checkpoint (with the model's generator, for dropout), so a training
  /// step keeps one [N, T, n_embd] tensor per block instead of its activations and recomputes each
  /// block in backward. Gradients are bitwise the same. Off by default; forward_cached and
  /// no_grad forwards never checkpoint.
  void set_checkpointing(bool on) { checkpointing_ = on; }
  /// Whether forward checkpoints the blocks (set_checkpointing).
  bool checkpointing() const { return checkpointing_; }

  std::shared_ptr<Embedding> wte;               ///< token embedding [vocab_size, n_embd]
  std::shared_ptr<PositionalEmbedding> wpe;     ///< position embedding [block_size, n_embd]
  std::shared_ptr<ModuleList> h;                ///< the n_layer GPTBlocks, named `h.0` … `h.{n_layer−1}`
  std::vector<std::shared_ptr<GPTBlock>> blocks;  ///< h's modules, typed
  UnaryModulePtr ln_f;               ///< the final LayerNorm over E
  std::shared_ptr<Linear> lm_head;   ///< n_embd → vocab_size, no bias, not tied to wte

 private:
  /// Logits of the block after the embeddings (shared by forward and forward_cached).
  Tensor embed(const Tensor& idx, int64_t offset, const char* who);
  GPTConfig config_;
  Generator* gen_;
  bool checkpointing_ = false;
};

/// Next tokens [N, 1] (int64) drawn from logits [N, V] (one row per sequence): softmax(logits /
/// temperature) restricted to the top_k largest logits (all when top_k ≤ 0 or ≥ V; ties with the
/// k-th are kept, as nanoGPT), one multinomial draw per row from `gen` (top_k and multinomial ops).
/// temperature 0 picks the argmax. Not recorded.
Tensor sample_logits(const Tensor& logits, double temperature, int64_t top_k, Generator& gen);

}  // namespace tapegrad::nn
