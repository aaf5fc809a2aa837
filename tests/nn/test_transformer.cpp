// Transformer layers and the GPT (nn/transformer.hpp): MultiheadAttention and TransformerEncoderLayer
// against PyTorch 1.13 (tests/nn/transformer_reference.safetensors, made by
// scripts/make_gpt_reference.py), causality, the key/value cache against the full forward, cached
// and cache-free generation, the sampler, and the errors.
//
// Tolerances: float64 1e-12 (rounding leaves ~1e-16 on values of order 1); float32 1e-5 (a few
// float32 ulps through two or three matrix products and a softmax).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>

#include "autograd/autograd.hpp"
#include "autograd/debug.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;

namespace {

const std::string kReference = std::string(TAPEGRAD_TESTS_DIR) + "/nn/transformer_reference.safetensors";

/// Loads the reference tensors named prefix + <key> for every key of m's state dict into m, in
/// `dtype` (strict: a key without a reference value is an error).
void load_reference(nn::Module& m, const nn::NamedTensors& all, const std::string& prefix, DType dtype) {
  nn::NamedTensors state;
  for (auto& [key, unused] : m.state_dict())
    for (auto& [name, t] : all)
      if (name == prefix + key) state.emplace_back(key, t.to(dtype));
  m.load_state_dict(state);
}
Tensor get(const nn::NamedTensors& all, const std::string& name, DType dtype = DType::f64) {
  for (auto& [n, t] : all)
    if (n == name) return t.to(dtype);
  FAIL("no reference tensor " << name);
  return Tensor();
}

/// max |got − want| / (1 + |want|) over all elements (shapes must match).
double max_error(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  const auto g = got.to_vector(), w = want.to_vector();
  double err = 0;
  for (size_t i = 0; i < g.size(); ++i) err = std::max(err, std::abs(g[i] - w[i]) / (1 + std::abs(w[i])));
  return err;
}

double tolerance(DType dtype) { return dtype == DType::f64 ? 1e-12 : 1e-5; }

/// Number of ops recorded while `f` runs.
template <class F>
int64_t ops_recorded(F&& f) {
  Profiler prof;
  f();
  prof.stop();
  int64_t n = 0;
  for (auto& r : prof.rows()) n += r.count;
  return n;
}

nn::GPTConfig tiny_config() {
  return nn::GPTConfig{.vocab_size = 11, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8};
}

Tensor tokens(const std::vector<int64_t>& values, int64_t n) {
  return index_tensor(values, {n, static_cast<int64_t>(values.size()) / n});
}

}  // namespace

TEST_CASE("MultiheadAttention: PyTorch's parameter names, shapes and initialisation") {
  Generator gen(7);
  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(8, 2), gen);
  auto state = mha.state_dict();
  REQUIRE(state.size() == 4);
  CHECK(state[0].first == "in_proj_weight");
  CHECK(state[0].second.shape() == Shape{24, 8});
  CHECK(state[1].first == "in_proj_bias");
  CHECK(state[1].second.shape() == Shape{24});
  CHECK(state[2].first == "out_proj.weight");
  CHECK(state[2].second.shape() == Shape{8, 8});
  CHECK(state[3].first == "out_proj.bias");
  CHECK(state[3].second.to_vector() == std::vector<double>(8, 0.0));
  CHECK(mha.in_proj_bias.to_vector() == std::vector<double>(24, 0.0));
  const double bound = std::sqrt(6.0 / (8 + 24));  // Xavier uniform of [3E, E]
  double largest = 0;
  for (double w : mha.in_proj_weight.to_vector()) largest = std::max(largest, std::abs(w));
  CHECK(largest <= bound);
  CHECK(largest > 0.8 * bound);
  nn::MultiheadAttention no_bias(nn::MultiheadAttentionOptions(8, 2).bias(false), gen);
  CHECK(no_bias.state_dict().size() == 2);
}

TEST_CASE("MultiheadAttention matches PyTorch: cross-attention, both masks, averaged weights") {
  const auto ref = nn::load_safetensors(kReference);
  for (DType dtype : {DType::f32, DType::f64}) {
    const std::string type = dtype_name(dtype);
    CAPTURE(type);
    nn::MultiheadAttention mha(4, 2);  // batch_first false: [L, N, E]
    mha.to(dtype);
    load_reference(mha, ref, "mha.", dtype);
    auto r = mha.forward(get(ref, "mha.query", dtype), get(ref, "mha.key", dtype), get(ref, "mha.value", dtype),
                         get(ref, "mha.attn_mask", dtype), get(ref, "mha.key_padding_mask", dtype), true);
    CHECK(max_error(r.output, get(ref, "mha.out")) < tolerance(dtype));
    CHECK(max_error(r.weights, get(ref, "mha.weights")) < tolerance(dtype));
    CHECK(r.weights.at({1, 0, 2}) == 0.0);  // the padded key of sequence 1
    // Without the masks the result differs: the masks were used.
    auto plain = mha.forward(get(ref, "mha.query", dtype), get(ref, "mha.key", dtype), get(ref, "mha.value", dtype));
    CHECK(max_error(plain.output, get(ref, "mha.out")) > 1e-3);
    CHECK_FALSE(plain.weights.defined());
  }
}

TEST_CASE("TransformerEncoderLayer matches PyTorch: post- and pre-norm, gelu, causal mask") {
  const auto ref = nn::load_safetensors(kReference);
  for (DType dtype : {DType::f32, DType::f64})
    for (bool norm_first : {false, true}) {
      const std::string type = dtype_name(dtype);
      CAPTURE(type);
      CAPTURE(norm_first);
      const std::string tag = norm_first ? "enc.pre." : "enc.post.";
      nn::TransformerEncoderLayer layer(nn::TransformerEncoderLayerOptions(4, 2)
                                            .dim_feedforward(8)
                                            .dropout(0.0)
                                            .activation(nn::Activation::gelu)
                                            .batch_first(true)
                                            .norm_first(norm_first));
      layer.to(dtype);
      load_reference(layer, ref, tag, dtype);
      CHECK(layer.state_dict().size() == 12);  // PyTorch's 12 tensors, all loaded (strictly) above
      const Tensor src = get(ref, "enc.src", dtype), want = get(ref, tag + "out");
      const Tensor mask = tensor({0, -INFINITY, -INFINITY, 0, 0, -INFINITY, 0, 0, 0}, {3, 3}, dtype);
      CHECK(max_error(layer.forward(src, mask), want) < tolerance(dtype));
      CHECK(max_error(layer.forward(src, Tensor(), Tensor(), /*is_causal=*/true), want) < tolerance(dtype));
      CHECK(max_error(layer.forward(src), want) > 1e-3);  // the mask matters
    }
}

TEST_CASE("MultiheadAttention and a GPT block pass gradcheck and gradgradcheck in float64") {
  Generator gen(17);
  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(4, 2).batch_first(true), gen);
  mha.to(DType::f64);
  auto attend = [&](const std::vector<Tensor>& in) {
    return mha.forward(in[0], in[1], in[2], in[3], in[4], false, true).output;  // both masks and causal
  };
  std::vector<Tensor> inputs = {randn({2, 2, 4}, DType::f64, gen), randn({2, 3, 4}, DType::f64, gen),
                                randn({2, 3, 4}, DType::f64, gen), randn({2, 3}, DType::f64, gen),
                                randn({2, 3}, DType::f64, gen)};
  for (auto& t : inputs) t.requires_grad_();
  GradcheckResult r = gradcheck(attend, inputs);
  CHECK_MESSAGE(r.ok, r.message);
  r = gradgradcheck(attend, inputs);
  CHECK_MESSAGE(r.ok, r.message);

  nn::GPTBlock block(tiny_config(), gen);
  block.to(DType::f64);
  auto run = [&](const std::vector<Tensor>& in) { return block.forward(in[0]); };
  r = gradcheck(run, {randn({2, 3, 8}, DType::f64, gen).requires_grad_()});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("causal self-attention at T = 64 and 128 (tiles of half the length) equals the weights path") {
  // Without weights the fused op runs on the tiles fused_options picks (32 rows at T = 64, 64 at
  // T = 128, the tiles above the diagonal skipped); with weights the composite runs: same output and
  // gradients in float64.
  for (int64_t t : {64, 128}) {
    CAPTURE(t);
    Generator gen(5);
    nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(8, 2).batch_first(true), gen);
    mha.to(DType::f64);
    const Tensor x = randn({2, t, 8}, DType::f64, gen), grad = randn({2, t, 8}, DType::f64, gen);
    std::vector<Tensor> outputs, grads;
    for (bool need_weights : {false, true}) {
      Tensor xi = x.detach().requires_grad_();
      for (auto& p : mha.parameters()) p.zero_grad();
      Tensor out = mha.forward(xi, xi, xi, Tensor(), Tensor(), need_weights, true).output;
      out.backward(grad);
      outputs.push_back(out.detach());
      grads.push_back(xi.grad());
      grads.push_back(mha.in_proj_weight.grad());
    }
    CHECK(max_error(outputs[0], outputs[1]) < 1e-12);
    CHECK(max_error(grads[0], grads[2]) < 1e-12);
    CHECK(max_error(grads[1], grads[3]) < 1e-12);
  }
}

TEST_CASE("GPT: PyTorch-style state dict keys, untied lm_head, nanoGPT's initialisation") {
  Generator gen(3);
  nn::GPT model(nn::GPTConfig{.vocab_size = 11, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 8}, gen);
  std::vector<std::string> names;
  for (auto& [n, t] : model.state_dict()) names.push_back(n);
  const std::vector<std::string> expected = {"wte.weight",
                                             "wpe.weight",
                                             "h.0.ln_1.weight",
                                             "h.0.ln_1.bias",
                                             "h.0.attn.in_proj_weight",
                                             "h.0.attn.in_proj_bias",
                                             "h.0.attn.out_proj.weight",
                                             "h.0.attn.out_proj.bias",
                                             "h.0.ln_2.weight",
                                             "h.0.ln_2.bias",
                                             "h.0.mlp.c_fc.weight",
                                             "h.0.mlp.c_fc.bias",
                                             "h.0.mlp.c_proj.weight",
                                             "h.0.mlp.c_proj.bias",
                                             "ln_f.weight",
                                             "ln_f.bias",
                                             "lm_head.weight"};
  CHECK(names == expected);
  CHECK(model.lm_head->weight.shape() == Shape{11, 8});
  CHECK_FALSE(model.lm_head->weight.is_same(model.wte->weight));
  auto std_of = [](const Tensor& t) {
    double s = 0;
    for (double v : t.to_vector()) s += v * v;
    return std::sqrt(s / static_cast<double>(t.numel()));
  };
  CHECK(std_of(model.blocks[0]->mlp->c_fc->weight) == doctest::Approx(0.02).epsilon(0.15));
  CHECK(std_of(model.blocks[0]->mlp->c_proj->weight) == doctest::Approx(0.02 / std::sqrt(2.0)).epsilon(0.15));
  CHECK(model.blocks[0]->mlp->c_fc->bias.to_vector() == std::vector<double>(32, 0.0));
  nn::GPT no_bias(
      nn::GPTConfig{.vocab_size = 11, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 8, .bias = false});
  for (auto& [n, t] : no_bias.state_dict()) CHECK_MESSAGE(n.find("bias") == std::string::npos, n);
  CHECK(no_bias.forward(tokens({1, 2, 3}, 1)).shape() == Shape{1, 3, 11});
}

TEST_CASE("GPT is causal: a later token changes no earlier logits") {
  Generator gen(11);
  nn::GPT model(tiny_config(), gen);
  const Tensor a = model.forward(tokens({1, 2, 3, 4, 5, 6, 1, 2, 9, 8, 7, 6, 5, 4, 3, 2}, 2));
  const Tensor b = model.forward(tokens({1, 2, 3, 4, 10, 6, 1, 2, 9, 8, 7, 6, 5, 4, 3, 0}, 2));
  CHECK(a.shape() == Shape{2, 8, 11});
  // Sequence 0 changes at position 4, sequence 1 at position 7.
  CHECK(max_error(slice(slice(a, 0, 0, 1), 1, 0, 4), slice(slice(b, 0, 0, 1), 1, 0, 4)) < 1e-6);
  CHECK(max_error(slice(slice(a, 0, 1, 2), 1, 0, 7), slice(slice(b, 0, 1, 2), 1, 0, 7)) < 1e-6);
  CHECK(max_error(slice(slice(a, 0, 0, 1), 1, 4, 8), slice(slice(b, 0, 0, 1), 1, 4, 8)) > 1e-4);
  CHECK(max_error(slice(slice(a, 0, 1, 2), 1, 7, 8), slice(slice(b, 0, 1, 2), 1, 7, 8)) > 1e-4);
  // GPT::loss is the cross-entropy of the flattened logits.
  const Tensor y = tokens({2, 3, 4, 5, 6, 1, 2, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 2);
  const Tensor want = nn::F::cross_entropy(reshape(a, {16, 11}), reshape(y, {16}));
  CHECK(nn::GPT::loss(a, y).item() == doctest::Approx(want.item()).epsilon(1e-12));
  CHECK(nn::GPT::loss(a, y).item() == doctest::Approx(std::log(11.0)).epsilon(0.05));  // small init: near uniform
}

TEST_CASE("GPT key/value cache: each cached step's logits equal the full forward's last position") {
  for (DType dtype : {DType::f32, DType::f64}) {
    const std::string type = dtype_name(dtype);
    CAPTURE(type);
    Generator gen(5);
    nn::GPT model(tiny_config(), gen);
    model.to(dtype);
    NoGradGuard no_grad;
    std::vector<int64_t> seq = {3, 1, 4, 7, 5, 9, 2, 6};  // one sequence; a second one below
    std::vector<int64_t> seq2 = {2, 7, 1, 8, 2, 8, 1, 8};
    nn::GPTCache cache;
    const int64_t prompt = 3;
    std::vector<int64_t> both;
    for (int64_t i = 0; i < prompt; ++i) both.push_back(seq[i]);
    for (int64_t i = 0; i < prompt; ++i) both.push_back(seq2[i]);
    Tensor step = model.forward_cached(tokens(both, 2), cache);  // prefill: logits of all 3 positions
    CHECK(max_error(step, model.forward(tokens(both, 2))) < tolerance(dtype));
    for (int64_t t = prompt; t < 8; ++t) {
      CAPTURE(t);
      step = model.forward_cached(tokens({seq[t], seq2[t]}, 2), cache);
      CHECK(cache.length() == t + 1);
      CHECK(cache.layers[0].key.shape() == Shape{2, 2, t + 1, 4});
      std::vector<int64_t> prefix;
      for (int64_t i = 0; i <= t; ++i) prefix.push_back(seq[i]);
      for (int64_t i = 0; i <= t; ++i) prefix.push_back(seq2[i]);
      const Tensor full = model.forward(tokens(prefix, 2));
      CHECK(step.shape() == Shape{2, 1, 11});
      CHECK(max_error(step, slice(full, 1, t, t + 1)) < tolerance(dtype));
    }
    // The cache is full: one more position is an error naming the sizes.
    CHECK_THROWS_WITH_AS(model.forward_cached(tokens({1, 1}, 2), cache),
                         doctest::Contains("after 8 cached positions is longer than block_size 8"), ShapeError);
  }
}

TEST_CASE("GPT::generate: the cached and cache-free paths draw the same tokens, past block_size too") {
  Generator init(9);
  nn::GPT model(tiny_config(), init);
  model.eval();
  const Tensor prompt = tokens({1, 2, 3, 4, 5, 6}, 2);
  Generator g1(123), g2(123), g3(124);
  const Tensor cached = model.generate(prompt, 12, 1.0, 0, g1, true);  // 3 + 12 > block_size 8
  const Tensor plain = model.generate(prompt, 12, 1.0, 0, g2, false);
  CHECK(cached.shape() == Shape{2, 15});
  CHECK(cached.to_vector() == plain.to_vector());
  CHECK(slice(cached, 1, 0, 3).to_vector() == prompt.to_vector());  // the prompt is kept
  const Tensor other = model.generate(prompt, 12, 1.0, 0, g3, true);
  CHECK(other.to_vector() != cached.to_vector());  // the draws come from the generator
  // top_k 1 is greedy decoding, equal to temperature 0.
  Generator g4(1), g5(2);
  CHECK(model.generate(prompt, 10, 1.0, 1, g4).to_vector() ==
        model.generate(prompt, 10, 0.0, 0, g5, false).to_vector());
}

TEST_CASE("sample_logits: top-k keeps the k largest, draws follow softmax(logits / temperature)") {
  const Tensor logits = tensor({0.0, 1.0, 2.0, -1.0, 0.5}, {1, 5});
  Generator gen(42);
  std::map<int64_t, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) counts[static_cast<int64_t>(nn::sample_logits(logits, 0.5, 3, gen).item())]++;
  CHECK(counts.size() == 3);  // tokens 1, 2 and 4 only
  // softmax over {1, 2, 0.5} / 0.5
  const double z = std::exp(2.0) + std::exp(4.0) + std::exp(1.0);
  CHECK(counts[2] / double(draws) == doctest::Approx(std::exp(4.0) / z).epsilon(0.03));
  CHECK(counts[1] / double(draws) == doctest::Approx(std::exp(2.0) / z).epsilon(0.05));
  CHECK(nn::sample_logits(logits, 0.0, 0, gen).item() == 2);
  CHECK_THROWS_AS(nn::sample_logits(tensor({1.0, 2.0}), 1.0, 0, gen), ShapeError);
}

TEST_CASE("transformer errors name the module and the shapes, and record nothing") {
  CHECK_THROWS_WITH_AS(nn::MultiheadAttention(6, 4), doctest::Contains("embed_dim 6 and num_heads 4"),
                       std::invalid_argument);
  CHECK_THROWS_AS(nn::MultiheadAttention(nn::MultiheadAttentionOptions(8, 2).dropout(1.0)), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::GPT(nn::GPTConfig{.n_head = 3}), doctest::Contains("n_head 3"), std::invalid_argument);

  nn::MultiheadAttention mha(nn::MultiheadAttentionOptions(4, 2).batch_first(true));
  const Tensor x = randn({2, 3, 4}).requires_grad_();
  CHECK(
      ops_recorded([&] {
        CHECK_THROWS_WITH_AS(mha.forward(x, x, x, zeros({3, 4})),
                             doctest::Contains("attn_mask must be [L, S] = [3, 3]"), ShapeError);
        CHECK_THROWS_WITH_AS(mha.forward(x, x, x, zeros({3, 3, 3})), doctest::Contains("got [3, 3, 3]"), ShapeError);
        CHECK_THROWS_WITH_AS(mha.forward(x, x, x, Tensor(), zeros({3, 2})),
                             doctest::Contains("key_padding_mask must be [N, S] = [2, 3], got [3, 2]"), ShapeError);
        CHECK_THROWS_WITH_AS(mha.forward(x, x, x, zeros({3, 3}, DType::f64)), doctest::Contains("float64"), DTypeError);
        CHECK_THROWS_WITH_AS(mha.forward(randn({2, 3, 5})), doctest::Contains("MultiheadAttention(4, heads 2)"),
                             ShapeError);
        CHECK_THROWS_AS(mha.forward(x, randn({3, 3, 4}), randn({3, 3, 4})), ShapeError);  // batch 3 against 2
      }) == 0);

  nn::TransformerEncoderLayer enc(nn::TransformerEncoderLayerOptions(4, 2).norm_first(true));
  CHECK(ops_recorded([&] {
          CHECK_THROWS_WITH_AS(enc.forward(randn({3, 2, 4}), zeros({2, 2})),
                               doctest::Contains("attn_mask must be [L, S] = [3, 3]"), ShapeError);
        }) == 0);

  Generator gen(1);
  nn::GPT model(tiny_config(), gen);
  CHECK(ops_recorded([&] {
          CHECK_THROWS_WITH_AS(model.forward(index_tensor(std::vector<int64_t>(9, 1), {1, 9})),
                               doctest::Contains("GPT::forward: input [1, 9] is longer than block_size 8"), ShapeError);
          CHECK_THROWS_WITH_AS(model.forward(zeros({1, 4})), doctest::Contains("int64"), ShapeError);
          CHECK_THROWS_AS(model.forward(tokens({1, 11}, 1)), ShapeError);  // token outside the vocabulary
          CHECK_THROWS_AS(nn::GPT::loss(zeros({2, 3, 11}), tokens({1, 2, 3}, 1)), ShapeError);
        }) == 0);
}

TEST_CASE("GPT::attention_maps: one causal [N, T, T] map per block, rows summing to 1, nothing recorded") {
  Generator gen(21);
  nn::GPT model(tiny_config(), gen);
  model.eval();
  Tensor idx = index_tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5});
  std::vector<Tensor> maps = model.attention_maps(idx);
  REQUIRE(maps.size() == 2);
  for (const Tensor& m : maps) {
    REQUIRE(m.shape() == Shape{2, 5, 5});
    CHECK_FALSE(m.requires_grad());
    const std::vector<double> w = m.to_vector();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 5; ++i) {
        double row = 0;
        for (int64_t j = 0; j < 5; ++j) {
          const double v = w[static_cast<size_t>((b * 5 + i) * 5 + j)];
          if (j > i) CHECK(v == 0.0);  // a query never sees later keys
          row += v;
        }
        CHECK(row == doctest::Approx(1.0).epsilon(1e-5));
      }
  }
  // the block's output with weights is its plain output
  Tensor x = randn({2, 5, 8}, DType::f32, gen), w;
  NoGradGuard off;
  CHECK(max(abs(model.blocks[0]->forward_with_weights(x, w) - model.blocks[0]->forward(x))).item() < 1e-6);
  CHECK(w.shape() == Shape{2, 5, 5});
}
