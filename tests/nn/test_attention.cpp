// scaled_dot_product_attention: known values, agreement of the fused op with the composite
// (attention_reference) in float64 to 1e-12 for outputs and the three gradients, float32, saved
// memory, causal structure, fully masked rows, dropout, create_graph and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "nn/nn.hpp"

using namespace tapegrad;
namespace F = tapegrad::nn::functional;
using F::AttentionOptions;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor leaf(const Shape& s, uint64_t seed, DType dtype = DType::f64) {
  Generator g(seed);
  return randn(s, dtype, g).requires_grad_();
}

Tensor fresh(const Tensor& t) {
  Tensor c = t.detach().clone();
  if (t.requires_grad()) c.requires_grad_();
  return c;
}

/// max |a − b| / max(1, |b|) over the elements.
double max_rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i]));
    worst = std::isnan(d) ? kInf : std::max(worst, d);
  }
  return worst;
}

struct Run {
  Tensor out;
  std::vector<Tensor> grads;  // of q, k, v, mask (undefined where not required)
};

/// Runs `fn` on copies of q, k, v (and mask), back-propagates a fixed random gradient.
template <class Fn>
Run run(Fn fn, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, AttentionOptions o) {
  std::vector<Tensor> in = {fresh(q), fresh(k), fresh(v), mask.defined() ? fresh(mask) : Tensor()};
  if (in[3].defined()) o.mask(in[3]);
  Run r;
  r.out = fn(in[0], in[1], in[2], o);
  Generator g(99);
  Tensor seed = randn(r.out.shape(), r.out.dtype(), g);
  r.out.backward(seed);
  for (const Tensor& t : in) r.grads.push_back(t.defined() && t.requires_grad() ? t.grad() : Tensor());
  return r;
}

/// Fused against composite: output and every gradient within `tol` (relative to max(1, |x|)).
void check_agrees(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const AttentionOptions& o,
                  double tol = 1e-12) {
  Run fused = run(F::scaled_dot_product_attention, q, k, v, mask, o);
  Run ref = run(F::attention_reference, q, k, v, mask, o);
  CHECK(max_rel_diff(fused.out, ref.out) <= tol);
  const char* names[] = {"dq", "dk", "dv", "dmask"};
  for (size_t i = 0; i < 4; ++i) {
    INFO(names[i]);
    REQUIRE(fused.grads[i].defined() == ref.grads[i].defined());
    if (fused.grads[i].defined()) CHECK(max_rel_diff(fused.grads[i], ref.grads[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("scaled_dot_product_attention: known values") {
  // one query [1, 0] over keys [1, 0], [0, 1] with values 1 and 3, scale 1: weights e/(e+1), 1/(e+1)
  Tensor q = tensor({1, 0}, {1, 2}, DType::f64), k = tensor({1, 0, 0, 1}, {2, 2}, DType::f64);
  Tensor v = tensor({1, 3}, {2, 1}, DType::f64);
  const double e = std::exp(1.0);
  CHECK(F::scaled_dot_product_attention(q, k, v, AttentionOptions().scale(1)).item() ==
        doctest::Approx((e + 3) / (e + 1)));
  // default scale 1/√2: scores 1/√2 and 0
  const double w = std::exp(1 / std::sqrt(2.0));
  CHECK(F::scaled_dot_product_attention(q, k, v).item() == doctest::Approx((w + 3) / (w + 1)));
  // a mask of −∞ on key 0 leaves value 3; causal leaves query 0 with key 0 only
  CHECK(F::scaled_dot_product_attention(q, k, v, AttentionOptions().mask(tensor({-kInf, 0}, {1, 2}, DType::f64)))
            .item() == 3);
  CHECK(F::scaled_dot_product_attention(q, k, v, AttentionOptions().causal(true)).item() == 1);
  // dv = weights (the output is linear in v)
  Tensor vv = v.detach().requires_grad_();
  F::scaled_dot_product_attention(q, k, vv, AttentionOptions().scale(1)).backward(ones({1, 1}, DType::f64));
  CHECK(vv.grad().to_vector()[0] == doctest::Approx(e / (e + 1)));
  CHECK(vv.grad().to_vector()[1] == doctest::Approx(1 / (e + 1)));
}

TEST_CASE("scaled_dot_product_attention agrees with the composite to 1e-12 in float64") {
  struct Case {
    Shape q, k, v;
    AttentionOptions o;
    const char* what;
  };
  std::vector<Case> cases = {
      {{2, 3, 70, 8}, {2, 3, 70, 8}, {2, 3, 70, 8}, AttentionOptions(), "T 70 not a multiple of the default tile"},
      {{2, 3, 1, 8}, {2, 3, 9, 8}, {2, 3, 9, 5}, AttentionOptions(), "T = 1"},
      {{2, 6, 1}, {2, 6, 1}, {2, 6, 3}, AttentionOptions().tiles(4, 4), "d = 1"},
      {{1, 2, 37, 5}, {1, 2, 53, 5}, {1, 2, 53, 7}, AttentionOptions().tiles(16, 8), "T 37 ≠ S 53, small tiles"},
      {{13, 4}, {11, 4}, {11, 2}, AttentionOptions().tiles(3, 5).scale(0.3), "no batch dimensions, scale 0.3"},
      {{2, 1, 2, 9, 3}, {2, 1, 2, 9, 3}, {2, 1, 2, 9, 3}, AttentionOptions().tiles(4, 2), "three batch dimensions"},
      {{2, 2, 45, 4}, {2, 2, 45, 4}, {2, 2, 45, 4}, AttentionOptions().causal(true).tiles(8, 16), "causal"},
      {{2, 2, 45, 4}, {2, 2, 45, 4}, {2, 2, 45, 4}, AttentionOptions().causal(true).tiles(16, 8), "causal 16×8"},
      {{1, 2, 20, 4}, {1, 2, 33, 4}, {1, 2, 33, 4}, AttentionOptions().causal(true).tiles(8, 8), "causal, T < S"},
      {{1, 2, 33, 4}, {1, 2, 20, 4}, {1, 2, 20, 4}, AttentionOptions().causal(true).tiles(8, 8), "causal, T > S"},
      {{1, 1, 150, 4}, {1, 1, 150, 4}, {1, 1, 150, 4}, AttentionOptions().causal(true), "causal, default tiles"},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    INFO(c.what);
    check_agrees(leaf(c.q, seed), leaf(c.k, seed + 1), leaf(c.v, seed + 2), Tensor(), c.o);
    seed += 3;
  }
}

TEST_CASE("scaled_dot_product_attention with a mask agrees with the composite, mask gradient included") {
  SUBCASE("[T, S] mask with −∞ entries and a fully masked row, requiring grad") {
    Tensor mask = leaf({23, 17}, 5).detach();
    double* m = mask.mutable_data<double>();
    for (int64_t j = 0; j < 17; ++j) m[4 * 17 + j] = -kInf;  // row 4: every key masked
    for (int64_t i = 0; i < 23 * 17; i += 5) m[i] = -kInf;
    mask.requires_grad_();
    check_agrees(leaf({2, 3, 23, 6}, 1), leaf({2, 3, 17, 6}, 2), leaf({2, 3, 17, 3}, 3), mask,
                 AttentionOptions().tiles(8, 4));
  }
  SUBCASE("per-batch padding mask [B, 1, 1, S], constant") {
    Tensor mask = zeros({2, 1, 1, 19}, DType::f64);
    double* m = mask.mutable_data<double>();
    for (int64_t j = 12; j < 19; ++j) m[j] = -kInf;  // batch 0: the last 7 keys are padding
    check_agrees(leaf({2, 3, 10, 4}, 4), leaf({2, 3, 19, 4}, 5), leaf({2, 3, 19, 4}, 6), mask,
                 AttentionOptions().tiles(4, 8));
  }
  SUBCASE("mask broadcast along the keys [T, 1]") {
    check_agrees(leaf({2, 9, 4}, 7), leaf({2, 6, 4}, 8), leaf({2, 6, 4}, 9), leaf({9, 1}, 10),
                 AttentionOptions().tiles(4, 4));
  }
}

TEST_CASE("scaled_dot_product_attention in float32 stays close to the float64 result") {
  Tensor q = leaf({2, 4, 100, 16}, 11), k = leaf({2, 4, 90, 16}, 12), v = leaf({2, 4, 90, 16}, 13);
  for (bool causal : {false, true}) {
    INFO("causal " << causal);
    AttentionOptions o = AttentionOptions().causal(causal);
    Run r32 = run(F::scaled_dot_product_attention, q.detach().to(DType::f32).requires_grad_(),
                  k.detach().to(DType::f32).requires_grad_(), v.detach().to(DType::f32).requires_grad_(), Tensor(), o);
    Run r64 = run(F::attention_reference, q, k, v, Tensor(), o);
    CHECK(r32.out.dtype() == DType::f32);
    CHECK(max_rel_diff(r32.out.to(DType::f64), r64.out) < 1e-5);
    for (size_t i = 0; i < 3; ++i) CHECK(max_rel_diff(r32.grads[i].to(DType::f64), r64.grads[i]) < 1e-4);
  }
}

TEST_CASE("scaled_dot_product_attention keeps O(B·H·T) for backward, the composite O(B·H·T·S)") {
  const int64_t B = 1, H = 2, T = 256, d = 16;
  Tensor q = leaf({B, H, T, d}, 14), k = leaf({B, H, T, d}, 15), v = leaf({B, H, T, d}, 16);
  auto retained = [&](auto fn) {  // bytes the graph holds after forward beyond the output
    const int64_t before = storage_stats().live_bytes;
    reset_peak_storage();
    Tensor out = fn(q, k, v, AttentionOptions());
    const int64_t out_bytes = out.numel() * 8;
    return std::pair<int64_t, int64_t>{storage_stats().live_bytes - before - out_bytes,
                                       storage_stats().peak_live_bytes - before - out_bytes};
  };
  auto [fused, fused_peak] = retained(F::scaled_dot_product_attention);
  auto [composite, composite_peak] = retained(F::attention_reference);
  CHECK(fused == B * H * T * 8);  // one log-sum-exp per query row, nothing else
  CHECK(fused_peak == B * H * T * 8);
  CHECK(composite >= B * H * T * T * 8);  // at least the T×S weights the softmax keeps
  CHECK(composite_peak >= composite);
}

TEST_CASE("causal attention: output i does not depend on keys or values after i") {
  Tensor q = leaf({1, 2, 24, 4}, 17), k = leaf({1, 2, 24, 4}, 18), v = leaf({1, 2, 24, 3}, 19);
  const int64_t cut = 9;  // rows 0..9 must not see keys 10..23
  Tensor k2 = k.detach().clone(), v2 = v.detach().clone();
  for (int64_t i = 0; i < k2.numel(); ++i)
    if ((i / 4) % 24 > cut) k2.mutable_data<double>()[i] += 3.0;
  for (int64_t i = 0; i < v2.numel(); ++i)
    if ((i / 3) % 24 > cut) v2.mutable_data<double>()[i] -= 5.0;
  auto o = AttentionOptions().causal(true).tiles(4, 4);
  auto a = F::scaled_dot_product_attention(q, k, v, o).to_vector();
  auto b = F::scaled_dot_product_attention(q, k2, v2, o).to_vector();
  int changed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t row = static_cast<int64_t>(i / 3) % 24;
    if (row <= cut)
      CHECK(a[i] == b[i]);
    else
      changed += a[i] != b[i];
  }
  CHECK(changed == 2 * 14 * 3);  // every later output moved
  // and the gradients of keys after row i receive nothing from the rows up to i
  Tensor kk = fresh(k);
  Tensor out = F::scaled_dot_product_attention(q, kk, v, o);
  sum(slice(out, 2, 0, cut + 1)).backward();
  auto gk = kk.grad().to_vector();
  for (size_t i = 0; i < gk.size(); ++i)
    if (static_cast<int64_t>(i / 4) % 24 > cut) CHECK(gk[i] == 0);
}

TEST_CASE("fully masked rows give output 0 and gradient 0 (PyTorch's math kernel gives NaN)") {
  Tensor q = leaf({1, 4, 3}, 20), k = leaf({1, 5, 3}, 21), v = leaf({1, 5, 2}, 22);
  Tensor mask = zeros({4, 5}, DType::f64);
  for (int64_t j = 0; j < 5; ++j) mask.mutable_data<double>()[1 * 5 + j] = -kInf;  // row 1
  for (auto fn : {F::scaled_dot_product_attention, F::attention_reference}) {
    Run r = run(fn, q, k, v, mask, AttentionOptions().tiles(2, 2));
    auto out = r.out.to_vector();
    CHECK(out[2] == 0);
    CHECK(out[3] == 0);
    for (double x : out) CHECK(std::isfinite(x));
    auto gq = r.grads[0].to_vector();
    CHECK(gq[3] == 0);
    CHECK(gq[4] == 0);
    CHECK(gq[5] == 0);
    for (double x : gq) CHECK(std::isfinite(x));
    CHECK(gq[0] != 0);
  }
  // no keys at all (S = 0): every row is fully masked
  Tensor q0 = fresh(q), k0 = zeros({1, 0, 3}, DType::f64).requires_grad_(), v0 = zeros({1, 0, 2}, DType::f64);
  Tensor out = F::scaled_dot_product_attention(q0, k0, v0);
  CHECK(out.shape() == Shape{1, 4, 2});
  for (double x : out.to_vector()) CHECK(x == 0);
  out.backward(ones({1, 4, 2}, DType::f64));
  for (double x : q0.grad().to_vector()) CHECK(x == 0);
  CHECK(k0.grad().shape() == Shape{1, 0, 3});
}

TEST_CASE("a row of NaN scores gives NaN, not the 0 of a fully masked row, as the composite does") {
  Tensor q = leaf({1, 4, 3}, 23), k = leaf({1, 5, 3}, 24), v = leaf({1, 5, 2}, 25);
  Tensor qn = q.detach().clone();
  for (int64_t c = 0; c < 3; ++c) qn.mutable_data<double>()[1 * 3 + c] = std::nan("");  // query row 1
  for (auto fn : {F::scaled_dot_product_attention, F::attention_reference}) {
    for (int64_t tile : {2, 8}) {
      CAPTURE(tile);
      auto out = fn(qn, k, v, AttentionOptions().tiles(tile, tile)).to_vector();
      CHECK(std::isnan(out[2]));
      CHECK(std::isnan(out[3]));
      CHECK(std::isfinite(out[0]));
      CHECK(std::isfinite(out[6]));
    }
  }
  // a NaN scale makes every score NaN: every output is NaN
  for (double x : F::scaled_dot_product_attention(q, k, v, AttentionOptions().scale(std::nan(""))).to_vector())
    CHECK(std::isnan(x));
}

TEST_CASE("attention dropout: the fused op and the composite drop the same entries for the same seed") {
  Tensor q = leaf({2, 2, 21, 4}, 23), k = leaf({2, 2, 18, 4}, 24), v = leaf({2, 2, 18, 3}, 25);
  Generator g1(7), g2(7);
  Run fused = run(F::scaled_dot_product_attention, q, k, v, Tensor(), AttentionOptions().dropout(0.4, g1).tiles(8, 4));
  Run ref = run(F::attention_reference, q, k, v, Tensor(), AttentionOptions().dropout(0.4, g2));
  CHECK(max_rel_diff(fused.out, ref.out) <= 1e-12);
  for (size_t i = 0; i < 3; ++i) CHECK(max_rel_diff(fused.grads[i], ref.grads[i]) <= 1e-12);
  // dropout changed the result, and each call took exactly one draw from its generator
  Run plain = run(F::scaled_dot_product_attention, q, k, v, Tensor(), AttentionOptions());
  CHECK(max_rel_diff(fused.out, plain.out) > 1e-3);
  Generator expected(7);
  expected.engine()();
  CHECK(g1.engine()() == expected.engine()());
  // a second call draws a new mask
  Generator g3(7);
  Tensor a = F::scaled_dot_product_attention(q, k, v, AttentionOptions().dropout(0.4, g3));
  Tensor b = F::scaled_dot_product_attention(q, k, v, AttentionOptions().dropout(0.4, g3));
  CHECK(max_rel_diff(a, b) > 1e-3);
  // the same entries are dropped in forward and in the recomputing backward: gradcheck with the
  // generator re-seeded per evaluation
  auto fn = [](const std::vector<Tensor>& in) {
    Generator g(5);
    return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout(0.5, g).tiles(2, 3));
  };
  auto r = gradcheck(fn, {leaf({1, 5, 3}, 26), leaf({1, 7, 3}, 27), leaf({1, 7, 2}, 28)});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("attention: only the needed gradients, create_graph second order equals the composite's") {
  Tensor q = leaf({1, 2, 7, 3}, 29), k = leaf({1, 2, 9, 3}, 30), v = leaf({1, 2, 9, 3}, 31);
  Tensor qd = q.detach(), kd = k.detach();
  Tensor vv = fresh(v);
  F::scaled_dot_product_attention(qd, kd, vv).sum().backward();
  CHECK(vv.grad().defined());
  // second order: d/dq Σ (∂L/∂q)² through create_graph, fused vs composite
  auto second = [&](auto fn) {
    Tensor a = fresh(q), b = fresh(k), c = fresh(v);
    Tensor out = fn(a, b, c, AttentionOptions().causal(true).tiles(2, 4));
    Tensor loss = sum(mul(out, out));
    Tensor ga = grad({loss}, {a}, {}, true, true)[0];
    return grad({sum(mul(ga, ga))}, {a, b, c})[0];
  };
  CHECK(max_rel_diff(second(F::scaled_dot_product_attention), second(F::attention_reference)) <= 1e-12);
}

TEST_CASE("attention errors name the op and the shapes, and nothing is recorded or drawn") {
  Tensor q = leaf({2, 3, 4, 8}, 32), k = leaf({2, 3, 5, 8}, 33), v = leaf({2, 3, 5, 6}, 34);
  auto throws = [&](const Tensor& a, const Tensor& b, const Tensor& c, const AttentionOptions& o,
                    const std::string& text) {
    Generator& g = *o.generator();
    const std::string before = g.state();
    for (auto fn : {F::scaled_dot_product_attention, F::attention_reference}) {
      try {
        fn(a, b, c, o);
        FAIL("no error for: " << text);
      } catch (const std::exception& e) {
        const std::string what = e.what();
        CHECK_MESSAGE(what.find("tapegrad::nn::scaled_dot_product_attention") != std::string::npos, what);
        CHECK_MESSAGE(what.find(text) != std::string::npos, what);
      }
    }
    CHECK(g.state() == before);
  };
  Generator g(1);
  auto o = [&] { return AttentionOptions().dropout(0.1, g); };
  throws(q, leaf({2, 3, 5, 7}, 35), v, o(), "head dimension d, got q [2, 3, 4, 8], k [2, 3, 5, 7]");
  throws(q, k, leaf({2, 3, 6, 6}, 36), o(), "number of keys S, got q [2, 3, 4, 8], k [2, 3, 5, 8], v [2, 3, 6, 6]");
  throws(q, leaf({3, 3, 5, 8}, 37), leaf({3, 3, 5, 6}, 38), o(), "batch dimensions");
  throws(q, leaf({3, 5, 8}, 39), leaf({3, 5, 6}, 40), o(), "same rank");
  throws(q, k, v, o().mask(zeros({4, 4}, DType::f64)), "mask [4, 4] does not broadcast to the scores [2, 3, 4, 5]");
  throws(q, k, v, o().mask(zeros({1, 2, 3, 4, 5}, DType::f64)), "mask [1, 2, 3, 4, 5] does not broadcast");
  throws(q, k, v, o().mask(zeros({4, 5}, DType::f32)), "additive with q's dtype float64, got float32 [4, 5]");
  throws(q, k.detach().to(DType::f32), v, o(), "one floating dtype, got float64, float32 and float64");
  throws(q, k, v, AttentionOptions().dropout(1.0, g), "dropout must be in [0, 1), got 1.0");
  throws(q, k, v, AttentionOptions().dropout(-0.1, g), "dropout must be in [0, 1)");
  throws(q, k, v, o().causal(true).mask(zeros({4, 5}, DType::f64)), "causal cannot be combined with an explicit mask");
  throws(q, k, v, o().tiles(0, 4), "tiles must be ≥ 1");
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, v, AttentionOptions().mask(zeros({4, 4}, DType::f64))),
                  ShapeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k.detach().to(DType::f32), v), DTypeError);
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, k, Tensor()), std::invalid_argument);
}

// ---- qkv_packed_attention: q, k, v read in place from [N, T, 3E] -----------------------------------

namespace {

/// The heads of a packed qkv [N, T, 3E] as separate q, k, v [N, H, T, d] leaves (copies).
std::vector<Tensor> unpacked(const Tensor& qkv, int64_t h) {
  const int64_t n = qkv.size(0), t = qkv.size(1), d = qkv.size(2) / 3 / h;
  Tensor x = permute(reshape(qkv.detach(), {n, t, 3, h, d}), {2, 0, 3, 1, 4});
  std::vector<Tensor> out;
  for (int64_t i = 0; i < 3; ++i) out.push_back(reshape(slice(x, 0, i, i + 1), {n, h, t, d}).clone().requires_grad_());
  return out;
}

/// [N, H, T, d] → [N, T, E].
Tensor merged(const Tensor& heads) {
  return reshape(permute(heads, {0, 2, 1, 3}), {heads.size(0), heads.size(2), heads.size(1) * heads.size(3)});
}

}  // namespace

TEST_CASE("qkv_packed_attention equals scaled_dot_product_attention on the split heads, gradients included") {
  struct Case {
    int64_t n, t, h, d, bq, bk;
    bool causal;
    double p;
  };
  for (const Case& c : {Case{2, 7, 3, 4, 128, 128, false, 0.0}, Case{2, 13, 2, 5, 4, 3, true, 0.0},
                        Case{1, 9, 4, 2, 2, 5, false, 0.3}, Case{3, 1, 1, 3, 128, 128, true, 0.0}}) {
    CAPTURE(c.t);
    CAPTURE(c.causal);
    Tensor qkv = leaf({c.n, c.t, 3 * c.h * c.d}, 41);
    Generator g1(3), g2(3);
    AttentionOptions o1 = AttentionOptions().causal(c.causal).tiles(c.bq, c.bk),
                     o2 = AttentionOptions().causal(c.causal).tiles(c.bq, c.bk);
    if (c.p > 0) {
      o1.dropout(c.p, g1);
      o2.dropout(c.p, g2);
    }
    Tensor packed_in = fresh(qkv);
    Tensor packed = F::qkv_packed_attention(packed_in, c.h, o1);
    std::vector<Tensor> qkv3 = unpacked(qkv, c.h);
    Tensor split = merged(F::scaled_dot_product_attention(qkv3[0], qkv3[1], qkv3[2], o2));
    CHECK(max_rel_diff(packed, split) <= 1e-12);
    Generator gs(8);
    Tensor seed = randn(packed.shape(), DType::f64, gs);
    packed.backward(seed);
    split.backward(seed);
    // the packed gradient, rearranged [N, T, 3, H, d] → [3, N, H, T, d], compared part by part
    Tensor got = permute(reshape(packed_in.grad(), {c.n, c.t, 3, c.h, c.d}), {2, 0, 3, 1, 4});
    for (int64_t i = 0; i < 3; ++i)
      CHECK(max_rel_diff(reshape(slice(got, 0, i, i + 1), {c.n, c.h, c.t, c.d}), qkv3[static_cast<size_t>(i)].grad()) <=
            1e-12);
  }
}

TEST_CASE("qkv_packed_attention: gradcheck, mask gradient, create_graph equals the composite's") {
  auto fn = [](const std::vector<Tensor>& in) {
    return F::qkv_packed_attention(in[0], 2, AttentionOptions().mask(in[1]).tiles(2, 3));
  };
  auto r = gradcheck(fn, {leaf({2, 5, 12}, 42), leaf({2, 1, 5, 5}, 43)});
  CHECK_MESSAGE(r.ok, r.message);
  auto causal = [](const std::vector<Tensor>& in) {
    Generator g(5);
    return F::qkv_packed_attention(in[0], 3, AttentionOptions().causal(true).dropout(0.4, g).tiles(3, 2));
  };
  r = gradcheck(causal, {leaf({1, 7, 9}, 44)});
  CHECK_MESSAGE(r.ok, r.message);
  r = gradgradcheck(causal, {leaf({1, 4, 9}, 45)});
  CHECK_MESSAGE(r.ok, r.message);
  // fused against the composite reference, first and second order
  Tensor qkv = leaf({2, 6, 12}, 46);
  auto second = [&](auto op) {
    Tensor a = fresh(qkv);
    Tensor out = op(a, 2, AttentionOptions().causal(true).tiles(2, 4));
    Tensor ga = grad({sum(mul(out, out))}, {a}, {}, true, true)[0];
    return std::make_pair(out, grad({sum(mul(ga, ga))}, {a})[0]);
  };
  auto [fused_out, fused_g2] = second(F::qkv_packed_attention);
  auto [ref_out, ref_g2] = second(F::qkv_packed_attention_reference);
  CHECK(max_rel_diff(fused_out, ref_out) <= 1e-12);
  CHECK(max_rel_diff(fused_g2, ref_g2) <= 1e-12);
}

TEST_CASE("qkv_packed_attention errors name the op and the shapes, and nothing is recorded or drawn") {
  Generator g(1);
  auto throws = [&](const Tensor& qkv, int64_t heads, const AttentionOptions& o, const std::string& text) {
    const std::string before = g.state();
    try {
      F::qkv_packed_attention(qkv, heads, o);
      FAIL("no error for: " << text);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      CHECK_MESSAGE(what.find("tapegrad::nn::qkv_packed_attention") != std::string::npos, what);
      CHECK_MESSAGE(what.find(text) != std::string::npos, what);
    }
    CHECK(g.state() == before);
  };
  Tensor qkv = leaf({2, 4, 12}, 47);
  throws(qkv, 3, AttentionOptions().dropout(0.1, g), "[N, T, 3E] with E a multiple of heads ≥ 1, got qkv [2, 4, 12] with 3 heads");
  throws(leaf({2, 4, 10}, 48), 1, AttentionOptions().dropout(0.1, g), "got qkv [2, 4, 10]");
  throws(leaf({8, 12}, 49), 1, AttentionOptions().dropout(0.1, g), "got qkv [8, 12]");
  throws(qkv, 0, AttentionOptions().dropout(0.1, g), "with 0 heads");
  throws(qkv, 2, AttentionOptions().dropout(0.1, g).mask(zeros({3, 4}, DType::f64)),
         "mask [3, 4] does not broadcast to the scores [2, 2, 4, 4] of qkv [2, 4, 12] with 2 heads");
  throws(qkv, 2, AttentionOptions().dropout(1.5, g), "dropout must be in [0, 1)");
  CHECK_THROWS_AS(F::qkv_packed_attention(arange(0, 24, 1, DType::i64).reshape({2, 1, 12}), 2), DTypeError);
}
