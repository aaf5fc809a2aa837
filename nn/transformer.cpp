// Transformer layers, the GPT and its sampler. Three pieces are composites written in one function
// each, so that a fused kernel can replace each in one place: attention (scores, additive mask,
// softmax, weighted sum) and sample_logits (softmax, top-k, one multinomial draw).
#include "nn/transformer.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "autograd/checkpoint.hpp"
#include "autograd/functions.hpp"
#include "autograd/node.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace tapegrad::nn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string shape_of(const Tensor& t) { return t.defined() ? to_string(t.shape()) : std::string("undefined"); }

/// [L, S] of the given dtype: −∞ where key j comes after query i (j > i + S − L), 0 elsewhere.
Tensor causal_mask(int64_t l, int64_t s, DType dtype) { return triu(full({l, s}, -kInf, dtype), s - l + 1); }

/// Scaled dot-product attention: q [N, H, L, d], k and v [N, H, S, d], `mask` additive and
/// broadcastable to [N, H, L, S] (or undefined), or `causal` (PyTorch's top-left is_causal, the
/// same as a causal mask when L = S). Returns softmax(q·kᵀ/√d + mask)·v [N, H, L, d] and, when
/// `need_weights`, the weights [N, H, L, S] (after dropout, as PyTorch's multi_head_attention_forward).
/// Without weights it is the fused, tiled op (F::scaled_dot_product_attention: O(L) memory, causal
/// tiles skipped); the weights need the composite, which materialises them.
/// The fused ops' options for an additive `mask` (or undefined) or `causal` over `length` queries
/// and keys, with dropout in training. Causal attention up to 256 keys gets tiles of half the length
/// (at least 32 rows), so the tile above the diagonal is skipped instead of computed and masked: the
/// default 128-row tile is the whole square below 128 (bench_nn's BM_GptAttentionTiles, forward +
/// backward, CPU time, loaded AMD EPYC: T = 64, 32 × 32 tiles 2.8 ms against 64 × 64 3.8; T = 128,
/// 64 × 64 7.2 against 128 × 128 9.2).
functional::AttentionOptions fused_options(const Tensor& mask, bool causal, double dropout_p, bool training,
                                           Generator& gen, int64_t length) {
  functional::AttentionOptions o;
  if (mask.defined()) o.mask(mask);
  if (causal) o.causal(true);
  if (causal && length <= 256) {
    const int64_t tile = std::max<int64_t>(32, (length + 1) / 2);
    o.tiles(tile, tile);
  }
  if (training && dropout_p > 0) o.dropout(dropout_p, gen);
  return o;
}

std::pair<Tensor, Tensor> attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal,
                                    bool need_weights, double dropout_p, bool training, Generator& gen) {
  if (!need_weights)
    return {functional::scaled_dot_product_attention(
                q, k, v, fused_options(mask, causal, dropout_p, training, gen, k.size(-2))),
            Tensor()};
  ProfileScope composite("attention_with_weights", ScopeKind::composite);  // one row of the profiler's op table
  const int64_t n = q.size(0), h = q.size(1), l = q.size(2), d = q.size(3), s = k.size(2);
  // [N·H, L, d]·[N·H, S, d]ᵀ: one batched gemm, the transpose is a BLAS flag.
  Tensor scores =
      gemm(reshape(q / std::sqrt(static_cast<double>(d)), {n * h, l, d}), reshape(k, {n * h, s, d}), false, true);
  scores = reshape(scores, {n, h, l, s});
  if (mask.defined()) scores = scores + mask;
  if (causal) scores = scores + reshape(causal_mask(l, s, q.dtype()), {1, 1, l, s});
  Tensor weights = functional::dropout(softmax(scores, -1), dropout_p, training, gen);
  Tensor out = gemm(reshape(weights, {n * h, l, s}), reshape(v, {n * h, s, d}));
  return {reshape(out, {n, h, l, d}), weights};
}


/// nanoGPT's LayerNorm: without a bias when GPTConfig::bias is false.
UnaryModulePtr gpt_layer_norm(const GPTConfig& c) {
  return std::make_shared<LayerNorm>(LayerNormOptions(Shape{c.n_embd}).bias(c.bias));
}

}  // namespace

// ---- MultiheadAttention -------------------------------------------------------------------------

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& o, Generator& gen) : options_(o), gen_(&gen) {
  const int64_t e = o.embed_dim(), h = o.num_heads();
  if (e <= 0 || h <= 0 || e % h != 0)
    throw std::invalid_argument(
        "tapegrad::nn::MultiheadAttention: embed_dim must be a positive multiple of num_heads, got embed_dim " +
        std::to_string(e) + " and num_heads " + std::to_string(h));
  if (!(o.dropout() >= 0 && o.dropout() < 1))
    throw std::invalid_argument("tapegrad::nn::MultiheadAttention: dropout must be in [0, 1), got " +
                                std::to_string(o.dropout()));
  in_proj_weight = register_parameter("in_proj_weight", Tensor::empty({3 * e, e}));
  if (o.bias()) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * e}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(LinearOptions(e, e).bias(o.bias()), gen));
  NoGradGuard no_grad;
  init::xavier_uniform_(in_proj_weight, 1.0, gen);
  if (o.bias()) init::zeros_(out_proj->bias);
}

std::string MultiheadAttention::repr() const {
  return "MultiheadAttention(" + std::to_string(options_.embed_dim()) + ", heads " +
         std::to_string(options_.num_heads()) + ")";
}

void MultiheadAttention::check_inputs(const Tensor& query, const Tensor& key, const Tensor& value,
                                      const Tensor& attn_mask, const Tensor& key_padding_mask) const {
  const int64_t e = options_.embed_dim(), h = options_.num_heads();
  const std::string who = "tapegrad::nn::" + repr() + ": ";
  const std::string layout = options_.batch_first() ? "[N, L, E]" : "[L, N, E]";
  const DType dtype = in_proj_weight.dtype();
  for (const Tensor* t : {&query, &key, &value}) {
    if (!t->defined() || t->dim() != 3 || t->size(2) != e)
      throw ShapeError(who + "query, key and value must be " + layout + " with E = " + std::to_string(e) +
                       ", got query " + shape_of(query) + ", key " + shape_of(key) + ", value " + shape_of(value));
    if (t->dtype() != dtype)
      throw DTypeError(who + "inputs must have the parameters' dtype " + dtype_name(dtype) + ", got " +
                       dtype_name(t->dtype()));
  }
  const int64_t b = options_.batch_first() ? 0 : 1, seq = 1 - b;
  const int64_t n = query.size(b), l = query.size(seq), s = key.size(seq);
  if (key.shape() != value.shape() || key.size(b) != n)
    throw ShapeError(who + "key and value must have the same shape and the query's batch, got query " +
                     shape_of(query) + ", key " + shape_of(key) + ", value " + shape_of(value));
  auto check_mask = [&](const Tensor& m, const char* name, const std::vector<Shape>& allowed,
                        const std::string& expected) {
    if (!m.defined()) return;
    if (m.dtype() != DType::b8 && m.dtype() != dtype)
      throw DTypeError(who + name + " must be bool (true = masked out) or an additive float mask of dtype " +
                       dtype_name(dtype) + ", got " + dtype_name(m.dtype()));
    if (std::find(allowed.begin(), allowed.end(), m.shape()) == allowed.end())
      throw ShapeError(who + name + " must be " + expected + ", got " + to_string(m.shape()) + " for query " +
                       to_string(query.shape()) + " and key " + to_string(key.shape()));
  };
  check_mask(attn_mask, "attn_mask", {{l, s}, {n * h, l, s}},
             "[L, S] = " + to_string({l, s}) + " or [N·H, L, S] = " + to_string({n * h, l, s}));
  check_mask(key_padding_mask, "key_padding_mask", {{n, s}}, "[N, S] = " + to_string({n, s}));
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x).output; }

AttentionResult MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const Tensor& attn_mask, const Tensor& key_padding_mask, bool need_weights,
                                            bool is_causal) {
  ModuleScope scope(*this);
  check_inputs(query, key, value, attn_mask, key_padding_mask);
  const bool bf = options_.batch_first();
  auto batch_first = [&](const Tensor& t) { return bf ? t : transpose(t, 0, 1); };
  const bool self = query.is_same(key) && key.is_same(value);
  Tensor q = batch_first(query), k = self ? q : batch_first(key), v = self ? q : batch_first(value);
  const int64_t n = q.size(0), l = q.size(1), s = k.size(1), h = options_.num_heads();
  Tensor mask;
  // nn.MultiheadAttention's bool masks: true = masked out (the opposite of the fused op's bool mask).
  auto add_mask = [&](const Tensor& m_in) {
    Tensor m = m_in.dtype() == DType::b8 ? where(m_in, scalar(-kInf, q.dtype()), scalar(0.0, q.dtype())) : m_in;
    mask = mask.defined() ? mask + m : m;
  };
  if (attn_mask.defined())
    add_mask(attn_mask.dim() == 2 ? reshape(attn_mask, {1, 1, l, s}) : reshape(attn_mask, {n, h, l, s}));
  if (key_padding_mask.defined()) add_mask(reshape(key_padding_mask, {n, 1, 1, s}));
  // PyTorch's MHA aligns is_causal bottom-right (the last query sees every key); with L = S that is
  // the fused op's own causal mode, which skips the masked tiles instead of adding −∞ to them.
  const bool causal = is_causal && !mask.defined() && l == s;
  if (is_causal && !causal) add_mask(reshape(causal_mask(l, s, q.dtype()), {1, 1, l, s}));
  AttentionResult r = attend(q, k, v, mask, need_weights, causal);
  if (!bf) r.output = transpose(r.output, 0, 1);
  return r;
}

AttentionResult MultiheadAttention::attend(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                           const Tensor& mask, bool need_weights, bool causal) {
  const int64_t e = options_.embed_dim(), h = options_.num_heads(), d = e / h;
  const int64_t n = q_in.size(0);
  const bool self = q_in.is_same(k_in) && k_in.is_same(v_in);
  if (self && !need_weights) {  // q, k, v read in place from the packed projection: no head permutes
    AttentionResult r;
    r.output = (*out_proj)(functional::qkv_packed_attention(
        functional::linear(q_in, in_proj_weight, in_proj_bias), h,
        fused_options(mask, causal, options_.dropout(), is_training(), *gen_, q_in.size(1))));
    return r;
  }
  Tensor q, k, v;
  if (self) {
    std::tie(q, k, v) = project_self(q_in);
  } else {
    auto project = [&](const Tensor& x, int64_t i) {  // rows [iE, (i+1)E) of in_proj: [N, T, E] -> [N, H, T, d]
      Tensor b = in_proj_bias.defined() ? slice(in_proj_bias, 0, i * e, (i + 1) * e) : Tensor();
      Tensor y = functional::linear(x, slice(in_proj_weight, 0, i * e, (i + 1) * e), b);
      return permute(reshape(y, {n, x.size(1), h, d}), {0, 2, 1, 3});
    };
    q = project(q_in, 0);
    k = project(k_in, 1);
    v = project(v_in, 2);
  }
  auto [out, weights] = attention(q, k, v, mask, causal, need_weights, options_.dropout(), is_training(), *gen_);
  AttentionResult r;
  r.output = merge_heads(out);
  if (need_weights) r.weights = mean(weights, {1});
  return r;
}

std::tuple<Tensor, Tensor, Tensor> MultiheadAttention::project_self(const Tensor& x) {
  const int64_t h = options_.num_heads(), d = options_.embed_dim() / h, n = x.size(0), t = x.size(1);
  // [N, T, 3E] -> [3, N, H, T, d]; its leading-dimension slices are views
  Tensor qkv = permute(reshape(functional::linear(x, in_proj_weight, in_proj_bias), {n, t, 3, h, d}), {2, 0, 3, 1, 4});
  return {reshape(slice(qkv, 0, 0, 1), {n, h, t, d}), reshape(slice(qkv, 0, 1, 2), {n, h, t, d}),
          reshape(slice(qkv, 0, 2, 3), {n, h, t, d})};
}

Tensor MultiheadAttention::merge_heads(const Tensor& heads) {  // [N, H, L, d] -> out_proj([N, L, E])
  return (*out_proj)(reshape(permute(heads, {0, 2, 1, 3}), {heads.size(0), heads.size(2), options_.embed_dim()}));
}

Tensor MultiheadAttention::forward_cached(const Tensor& x, KVCache& cache) {
  ModuleScope scope(*this);
  check_inputs(x, x, x, Tensor(), Tensor());
  const bool bf = options_.batch_first();
  Tensor xb = bf ? x : transpose(x, 0, 1);
  const int64_t h = options_.num_heads(), d = options_.embed_dim() / h, n = xb.size(0), t = xb.size(1);
  if (cache.length() > 0 && (cache.key.size(0) != n || cache.key.size(1) != h || cache.key.size(3) != d ||
                             cache.key.dtype() != xb.dtype() || cache.value.shape() != cache.key.shape()))
    throw ShapeError("tapegrad::nn::" + repr() + "::forward_cached: the cache holds keys " + shape_of(cache.key) +
                     " and values " + shape_of(cache.value) + ", which do not fit new positions " +
                     to_string(x.shape()));
  auto [q, k, v] = project_self(xb);
  const bool empty = cache.length() == 0;
  cache.key = empty ? k : cat({cache.key, k}, 2);
  cache.value = empty ? v : cat({cache.value, v}, 2);
  const int64_t s = cache.length();
  Tensor mask = t > 1 ? reshape(causal_mask(t, s, xb.dtype()), {1, 1, t, s}) : Tensor();  // one query sees all
  Tensor out = merge_heads(
      attention(q, cache.key, cache.value, mask, false, false, options_.dropout(), is_training(), *gen_).first);
  return bf ? out : transpose(out, 0, 1);
}

// ---- PositionalEmbedding ------------------------------------------------------------------------

PositionalEmbedding::PositionalEmbedding(int64_t max_length, int64_t dim, Generator& gen) {
  if (max_length <= 0 || dim <= 0)
    throw std::invalid_argument("tapegrad::nn::PositionalEmbedding: sizes must be positive, got " +
                                std::to_string(max_length) + " and " + std::to_string(dim));
  weight = register_parameter("weight", init::normal_(Tensor::empty({max_length, dim}), 0.0, 1.0, gen));
}

std::string PositionalEmbedding::repr() const {
  return "PositionalEmbedding(" + std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1)) + ")";
}

Tensor PositionalEmbedding::forward(const Tensor& x, int64_t offset) {
  ModuleScope scope(*this);
  if (!x.defined() || x.dim() != 3 || x.size(2) != weight.size(1) || offset < 0 || offset + x.size(1) > weight.size(0))
    throw ShapeError("tapegrad::nn::" + repr() + ": expects [N, T, " + std::to_string(weight.size(1)) +
                     "] with offset + T ≤ " + std::to_string(weight.size(0)) + ", got " + shape_of(x) + " at offset " +
                     std::to_string(offset));
  return x + slice(weight, 0, offset, offset + x.size(1));
}

// ---- TransformerEncoderLayer ----------------------------------------------------------------------

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerEncoderLayerOptions& o, Generator& gen)
    : options_(o) {
  if (o.dim_feedforward() <= 0)
    throw std::invalid_argument("tapegrad::nn::TransformerEncoderLayer: dim_feedforward must be positive, got " +
                                std::to_string(o.dim_feedforward()));
  self_attn = register_module(
      "self_attn",
      std::make_shared<MultiheadAttention>(
          MultiheadAttentionOptions(o.d_model(), o.nhead()).dropout(o.dropout()).batch_first(o.batch_first()), gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(o.d_model(), o.dim_feedforward(), gen));
  dropout = register_module("dropout", std::make_shared<Dropout>(o.dropout(), gen));
  linear2 = register_module("linear2", std::make_shared<Linear>(o.dim_feedforward(), o.d_model(), gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(LayerNormOptions(Shape{o.d_model()}).eps(o.layer_norm_eps())));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(LayerNormOptions(Shape{o.d_model()}).eps(o.layer_norm_eps())));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(o.dropout(), gen));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(o.dropout(), gen));
}

std::string TransformerEncoderLayer::repr() const {
  return "TransformerEncoderLayer(" + std::to_string(options_.d_model()) + ", heads " +
         std::to_string(options_.nhead()) + ")";
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask,
                                        bool is_causal) {
  ModuleScope scope(*this);
  self_attn->check_inputs(src, src, src, src_mask, src_key_padding_mask);  // before anything is recorded
  auto sa = [&](const Tensor& x) {
    return (*dropout1)(self_attn->forward(x, x, x, src_mask, src_key_padding_mask, false, is_causal).output);
  };
  auto ff = [&](const Tensor& x) {
    Tensor a = (*linear1)(x);
    a = options_.activation() == Activation::relu ? relu(a) : gelu(a);
    return (*dropout2)((*linear2)((*dropout)(a)));
  };
  Tensor x = src;
  if (options_.norm_first()) {
    x = x + sa((*norm1)(x));
    return x + ff((*norm2)(x));
  }
  x = (*norm1)(x + sa(x));
  return (*norm2)(x + ff(x));
}

// ---- GPT ---------------------------------------------------------------------------------------------

GPTMLP::GPTMLP(const GPTConfig& c, Generator& gen) : dropout_(c.dropout), gen_(&gen) {
  c_fc = register_module("c_fc", std::make_shared<Linear>(LinearOptions(c.n_embd, 4 * c.n_embd).bias(c.bias), gen));
  c_proj = register_module("c_proj", std::make_shared<Linear>(LinearOptions(4 * c.n_embd, c.n_embd).bias(c.bias), gen));
}

Tensor GPTMLP::forward(const Tensor& x) {
  return functional::dropout((*c_proj)(gelu((*c_fc)(x), GeluApproximate::tanh)), dropout_, is_training(), *gen_);
}

GPTBlock::GPTBlock(const GPTConfig& c, Generator& gen) : dropout_(c.dropout), gen_(&gen) {
  ln_1 = register_module("ln_1", gpt_layer_norm(c));
  attn = register_module(
      "attn",
      std::make_shared<MultiheadAttention>(
          MultiheadAttentionOptions(c.n_embd, c.n_head).dropout(c.dropout).bias(c.bias).batch_first(true), gen));
  ln_2 = register_module("ln_2", gpt_layer_norm(c));
  mlp = register_module("mlp", std::make_shared<GPTMLP>(c, gen));
}

Tensor GPTBlock::forward(const Tensor& x) {
  Tensor unused;
  return run(x, false, unused);
}

Tensor GPTBlock::forward_with_weights(const Tensor& x, Tensor& weights) {
  ModuleScope scope(*this);
  return run(x, true, weights);
}

Tensor GPTBlock::run(const Tensor& x, bool need_weights, Tensor& weights) {
  Tensor a = (*ln_1)(x);
  AttentionResult r = attn->forward(a, a, a, Tensor(), Tensor(), need_weights, true);
  weights = r.weights;
  Tensor y = x + functional::dropout(r.output, dropout_, is_training(), *gen_);
  return y + (*mlp)((*ln_2)(y));
}

Tensor GPTBlock::forward_cached(const Tensor& x, KVCache& cache) {
  ModuleScope scope(*this);
  Tensor y = x + functional::dropout(attn->forward_cached((*ln_1)(x), cache), dropout_, is_training(), *gen_);
  return y + (*mlp)((*ln_2)(y));
}

GPT::GPT(const GPTConfig& c, Generator& gen) : config_(c), gen_(&gen) {
  if (c.vocab_size <= 0 || c.block_size <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_embd <= 0 ||
      c.n_embd % c.n_head != 0)
    throw std::invalid_argument(
        "tapegrad::nn::GPT: sizes must be positive and n_embd a multiple of n_head, got vocab_size " +
        std::to_string(c.vocab_size) + ", block_size " + std::to_string(c.block_size) + ", n_layer " +
        std::to_string(c.n_layer) + ", n_head " + std::to_string(c.n_head) + ", n_embd " + std::to_string(c.n_embd));
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw std::invalid_argument("tapegrad::nn::GPT: dropout must be in [0, 1), got " + std::to_string(c.dropout));
  wte = register_module("wte", std::make_shared<Embedding>(c.vocab_size, c.n_embd, gen));
  wpe = register_module("wpe", std::make_shared<PositionalEmbedding>(c.block_size, c.n_embd, gen));
  h = register_module("h", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    blocks.push_back(std::make_shared<GPTBlock>(c, gen));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", gpt_layer_norm(c));
  lm_head = register_module("lm_head", std::make_shared<Linear>(LinearOptions(c.n_embd, c.vocab_size).bias(false), gen));
  NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer));
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (auto& [name, p] : named_parameters()) {
    if (p.dim() >= 2) {
      const bool residual = ends_with(name, "attn.out_proj.weight") || ends_with(name, "mlp.c_proj.weight");
      init::normal_(p, 0.0, residual ? residual_std : 0.02, gen);
    } else if (ends_with(name, "bias")) {
      init::zeros_(p);
    }
  }
}

Tensor GPT::embed(const Tensor& idx, int64_t offset, const char* who) {
  if (!idx.defined() || idx.dim() != 2 || idx.size(1) < 1 || idx.dtype() != DType::i64)
    throw ShapeError(std::string("tapegrad::nn::GPT::") + who + ": expects int64 tokens [N, T] with T ≥ 1, got " +
                     (idx.defined() ? std::string(dtype_name(idx.dtype())) + " " : "") + shape_of(idx));
  if (offset + idx.size(1) > config_.block_size)
    throw ShapeError(std::string("tapegrad::nn::GPT::") + who + ": input " + to_string(idx.shape()) +
                     (offset > 0 ? " after " + std::to_string(offset) + " cached positions" : std::string()) +
                     " is longer than block_size " + std::to_string(config_.block_size));
  Tensor x = wpe->forward((*wte)(idx), offset);
  return functional::dropout(x, config_.dropout, is_training(), *gen_);
}

Tensor GPT::forward(const Tensor& idx) {
  Tensor x = embed(idx, 0, "forward");
  const bool recompute = checkpointing_ && grad_enabled();
  for (auto& b : blocks)
    x = recompute ? checkpoint([b](const Tensor& in) { return (*b)(in); }, x, CheckpointOptions().add_generator(*gen_))
                  : (*b)(x);
  return (*lm_head)((*ln_f)(x));
}

std::vector<Tensor> GPT::attention_maps(const Tensor& idx) {
  NoGradGuard off;
  ModuleScope scope(*this);
  Tensor x = embed(idx, 0, "attention_maps");
  std::vector<Tensor> maps(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward_with_weights(x, maps[i]);
  return maps;
}

Tensor GPT::forward_cached(const Tensor& idx, GPTCache& cache) {
  ModuleScope scope(*this);
  if (!cache.layers.empty() && cache.layers.size() != blocks.size())
    throw std::invalid_argument("tapegrad::nn::GPT::forward_cached: the cache has " +
                                std::to_string(cache.layers.size()) + " layers, the model " +
                                std::to_string(blocks.size()));
  if (cache.length() > 0 && idx.defined() && idx.dim() == 2 && cache.layers[0].key.size(0) != idx.size(0))
    throw ShapeError("tapegrad::nn::GPT::forward_cached: the cache holds " +
                     std::to_string(cache.layers[0].key.size(0)) + " sequences, got tokens " + to_string(idx.shape()));
  Tensor x = embed(idx, cache.length(), "forward_cached");
  cache.layers.resize(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward_cached(x, cache.layers[i]);
  return (*lm_head)((*ln_f)(x));
}

Tensor GPT::loss(const Tensor& logits, const Tensor& targets) {
  if (!logits.defined() || !targets.defined() || logits.dim() != 3 || targets.dim() != 2 ||
      targets.shape() != Shape{logits.size(0), logits.size(1)})
    throw ShapeError("tapegrad::nn::GPT::loss: expects logits [N, T, V] and targets [N, T], got logits " +
                     shape_of(logits) + " and targets " + shape_of(targets));
  const int64_t rows = logits.size(0) * logits.size(1);
  return functional::cross_entropy(reshape(logits, {rows, logits.size(2)}), reshape(targets, {rows}));
}

Tensor GPT::generate(const Tensor& idx, int64_t max_new_tokens, double temperature, int64_t top_k, Generator& gen,
                     bool use_cache) {
  if (!idx.defined() || idx.dim() != 2 || idx.size(1) < 1 || idx.dtype() != DType::i64)
    throw ShapeError("tapegrad::nn::GPT::generate: expects int64 tokens [N, T] with T ≥ 1, got " + shape_of(idx));
  if (max_new_tokens < 0 || !(temperature >= 0) || !std::isfinite(temperature))
    throw std::invalid_argument(
        "tapegrad::nn::GPT::generate: max_new_tokens must be ≥ 0 and temperature finite and ≥ 0, got " +
        std::to_string(max_new_tokens) + " and " + std::to_string(temperature));
  NoGradGuard no_grad;
  const int64_t block = config_.block_size;
  auto window = [&](const Tensor& t) { return slice(t, 1, std::max<int64_t>(0, t.size(1) - block), t.size(1)); };
  auto last = [](const Tensor& logits) {  // [N, T, V] -> [N, V]
    return reshape(slice(logits, 1, logits.size(1) - 1, logits.size(1)), {logits.size(0), logits.size(2)});
  };
  Tensor out = idx;
  GPTCache cache;
  Tensor logits;
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    if (!use_cache)
      logits = forward(window(out));
    else if (i == 0 || cache.length() == block) {  // (re-)encode the window
      cache.clear();
      logits = forward_cached(window(out), cache);
    } else {
      logits = forward_cached(slice(out, 1, out.size(1) - 1, out.size(1)), cache);
    }
    out = cat({out, sample_logits(last(logits), temperature, top_k, gen)}, 1);
  }
  return out;
}

Tensor sample_logits(const Tensor& logits, double temperature, int64_t top_k, Generator& gen) {
  if (!logits.defined() || logits.dim() != 2 || logits.size(1) < 1 || !is_floating(logits.dtype()))
    throw ShapeError("tapegrad::nn::sample_logits: expects floating logits [N, V], got " + shape_of(logits));
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw std::invalid_argument("tapegrad::nn::sample_logits: temperature must be finite and ≥ 0, got " +
                                std::to_string(temperature));
  NoGradGuard no_grad;
  const int64_t v = logits.size(1);
  Tensor top = max(logits, {1});
  for (int64_t r = 0; r < logits.size(0); ++r)
    if (!std::isfinite(top.at({r})))
      throw std::invalid_argument("tapegrad::nn::sample_logits: row " + std::to_string(r) + " of logits " +
                                  to_string(logits.shape()) + " has no finite largest value (" +
                                  std::to_string(top.at({r})) + ")");
  if (temperature == 0) return argmax(logits, 1, /*keepdim=*/true);
  Tensor scaled = logits / temperature;
  if (top_k > 0 && top_k < v) {  // nanoGPT: logits below the k-th largest are removed (ties with it kept)
    Tensor kth = slice(topk(scaled, top_k, 1).values, 1, top_k - 1, top_k);
    scaled = masked_fill(scaled, lt(scaled, kth), -kInf);
  }
  return multinomial(softmax(scaled, 1), 1, /*replacement=*/true, gen);
}

}  // namespace tapegrad::nn
