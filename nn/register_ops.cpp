// Registers the nn ops in the op registry with float64 samples, so the registry test runs
// gradcheck and gradgradcheck over each of them, and float32 benchmark inputs at the sizes the
// examples train at (conv2d [32, 32, 28, 28] 3×3 → 64, logits [256, 1000], attention
// [8, 8, 256, 64]), so bench_registry times them. nn/functional.hpp queues them as a group
// (register_op_group): every program that includes an nn header has them, no call needed.
#include <limits>

#include "autograd/random.hpp"
#include "autograd/registry.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn {
namespace {

using functional::Reduction;
using In = const std::vector<Tensor>&;

/// A fresh, fixed generator per sample so the samples are the same in every run.
Tensor randn64(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::f64, g);
}
Tensor param(const Shape& s, uint64_t seed) { return randn64(s, seed).requires_grad_(); }

void add(const std::string& name, TensorFunction fn, std::function<std::vector<OpSample>()> samples,
         std::function<OpBench()> bench) {
  register_op(OpInfo{"nn." + name, "nn", std::move(fn), std::move(samples), true, 1e-5, 1e-3, std::move(bench)});
}

// benchmark inputs (float32)
const Shape kImages{32, 32, 28, 28};  // the small CNN's conv2 input at batch 32 (28×28 kept)
const Shape kLogits{256, 1000};
const Shape kRows{256, 1024};
Tensor B(const Shape& s) { return bench_randn(s); }
Tensor constant(const Shape& s) { return bench_randn(s, false); }
OpBench bench_images() { return OpBench({B(kImages)}); }
OpBench bench_rows() { return OpBench({B(kRows)}); }
/// Attention's q, k, v at [batch 8, heads 8, T = S = 256, head dim 64].
std::vector<Tensor> qkv() { return {B({8, 8, 256, 64}), B({8, 8, 256, 64}), B({8, 8, 256, 64})}; }

void add_all() {
  namespace F = functional;
  add("linear", [](In in) { return F::linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); }, [] {
    return std::vector<OpSample>{{{param({3, 4}, 1), param({5, 4}, 2), param({5}, 3)}, "2-D with bias"},
                                 {{param({2, 3, 4}, 4), param({2, 4}, 5)}, "3-D input, no bias"}};
  }, [] { return OpBench({B({256, 512}), B({512, 512}), B({512})}); });
  add("conv2d", [](In in) { return F::conv2d(in[0], in[1], in[2], 1, 1); }, [] {
    return std::vector<OpSample>{{{param({2, 2, 4, 5}, 6), param({3, 2, 3, 3}, 7), param({3}, 8)}, "padding 1"}};
  }, [] { return OpBench({B(kImages), B({64, 32, 3, 3}), B({64})}); });
  // 8 → 8 channels, 3×3, stride 1: the automatic rule (nn/conv_winograd.hpp) runs Winograd F(2×2, 3×3).
  add("conv2d_winograd", [](In in) { return F::conv2d(in[0], in[1], in[2], 1, 2); }, [] {
    return std::vector<OpSample>{
        {{param({1, 8, 3, 4}, 90), param({8, 8, 3, 3}, 91), param({8}, 92)}, "8 → 8 channels, padding 2"}};
  }, [] { return OpBench({B(kImages), B({64, 32, 3, 3}), B({64})}); });
  add("conv2d_strided_dilated", [](In in) { return F::conv2d(in[0], in[1], Tensor(), 2, {1, 0}, {2, 1}); }, [] {
    return std::vector<OpSample>{{{param({1, 2, 6, 5}, 9), param({2, 2, 2, 3}, 10)}, "stride 2, padding (1,0), dilation (2,1)"}};
  }, [] { return OpBench({B(kImages), B({64, 32, 2, 3})}); });
  add("im2col", [](In in) { return F::im2col(in[0], {2, 3}, {1, 2}, 1); }, [] {
    return std::vector<OpSample>{{{param({2, 2, 3, 4}, 11)}, "kernel 2×3, stride (1,2), padding 1"}};
  }, [] { return OpBench({B(kImages)}, [](In in) { return F::im2col(in[0], 3, 1, 1); }); });
  add("col2im", [](In in) { return F::col2im(in[0], {1, 2, 3, 3}, 2); }, [] {
    return std::vector<OpSample>{{{param({8, 4}, 12)}, "kernel 2 over 3×3"}};
  }, [] {  // the columns of a 3×3, padding 1 im2col of [32, 32, 28, 28]
    return OpBench({B({32 * 9, 32 * 28 * 28})}, [](In in) { return F::col2im(in[0], kImages, 3, 1, 1); });
  });
  add("max_pool2d", [](In in) { return F::max_pool2d(in[0], 2); }, [] {
    return std::vector<OpSample>{{{param({2, 2, 4, 4}, 13)}, "2×2 windows"}};
  }, bench_images);
  add("max_pool2d_overlapping", [](In in) { return F::max_pool2d(in[0], 3, 2, 1); }, [] {
    return std::vector<OpSample>{{{param({1, 2, 5, 5}, 14)}, "3×3, stride 2, padding 1"}};
  }, bench_images);
  add("avg_pool2d", [](In in) { return F::avg_pool2d(in[0], 3, 2, 1); }, [] {
    return std::vector<OpSample>{{{param({2, 1, 5, 4}, 15)}, "3×3, stride 2, padding 1"}};
  }, bench_images);
  add("batch_norm_train", [](In in) { return F::batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); }, [] {
    return std::vector<OpSample>{{{param({4, 3}, 16), param({3}, 17), param({3}, 18)}, "[N, C]"},
                                 {{param({2, 3, 2, 2}, 19), param({3}, 20), param({3}, 21)}, "[N, C, H, W]"}};
  }, [] { return OpBench({B({32, 64, 14, 14}), B({64}), B({64})}); });
  add("batch_norm_eval", [](In in) {
    Tensor rm = tensor({0.5, -0.2, 0.1}, DType::f64), rv = tensor({1.5, 0.7, 2.0}, DType::f64);
    return F::batch_norm(in[0], rm, rv, in[1], in[2], false);
  }, [] { return std::vector<OpSample>{{{param({2, 3, 2}, 22), param({3}, 23), param({3}, 24)}, "running statistics"}}; }, [] {
    return OpBench({B({32, 64, 14, 14}), B({64}), B({64})}, [](In in) {
      return F::batch_norm(in[0], zeros({64}), ones({64}), in[1], in[2], false);
    });
  });
  add("layer_norm", [](In in) { return F::layer_norm(in[0], {4}, in[1], in[2]); }, [] {
    return std::vector<OpSample>{{{param({2, 3, 4}, 25), param({4}, 26), param({4}, 27)}, "last dim, affine"}};
  }, [] { return OpBench({B(kRows), B({1024}), B({1024})}, [](In in) { return F::layer_norm(in[0], {1024}, in[1], in[2]); }); });
  add("layer_norm_no_weight", [](In in) { return F::layer_norm(in[0], {3, 4}, Tensor(), in[1]); }, [] {
    return std::vector<OpSample>{{{param({2, 3, 4}, 51), param({3, 4}, 52)}, "two trailing dims, bias only"}};
  }, [] { return OpBench({B(kRows), B({1024})}, [](In in) { return F::layer_norm(in[0], {1024}, Tensor(), in[1]); }); });
  add("layer_norm_no_bias", [](In in) { return F::layer_norm(in[0], {5}, in[1], Tensor(), 1e-3); }, [] {
    return std::vector<OpSample>{{{param({3, 5}, 53), param({5}, 54)}, "last dim, weight only, eps 1e-3"}};
  }, [] { return OpBench({B(kRows), B({1024})}, [](In in) { return F::layer_norm(in[0], {1024}, in[1], Tensor(), 1e-3); }); });
  add("layer_norm_plain", [](In in) { return F::layer_norm(in[0], {7}); }, [] {
    return std::vector<OpSample>{{{param({2, 7}, 55)}, "no weight, no bias"}};
  }, [] { return OpBench({B(kRows)}, [](In in) { return F::layer_norm(in[0], {1024}); }); });
  add("embedding", [](In in) { return F::embedding(in[1], in[0]); }, [] {
    return std::vector<OpSample>{{{param({5, 3}, 28), index_tensor({0, 4, 4, 2}, {2, 2})}, "repeated indices"}};
  }, [] { return OpBench({B({1000, 512}), bench_indices({32, 64}, 1000)}); });
  add("dropout", [](In in) { Generator g(7); return F::dropout(in[0], 0.3, true, g); }, [] {
    return std::vector<OpSample>{{{param({4, 5}, 29)}, "p = 0.3, fixed mask"}};
  }, bench_rows);
  add("cross_entropy", [](In in) { return F::cross_entropy(in[0], in[1]); }, [] {
    return std::vector<OpSample>{{{param({4, 5}, 30), index_tensor({0, 4, 2, 2})}, "mean"}};
  }, [] { return OpBench({B(kLogits), bench_indices({256}, 1000)}); });
  add("cross_entropy_none", [](In in) { return F::cross_entropy(in[0], in[1], Reduction::none); }, [] {
    return std::vector<OpSample>{{{param({3, 4}, 31), index_tensor({3, 0, 1})}, "no reduction"}};
  }, [] { return OpBench({B(kLogits), bench_indices({256}, 1000)}); });
  add("cross_entropy_options", [](In in) {
    Tensor w = tensor({0.5, 2.0, 1.0, 1.5, 0.8}, DType::f64);
    return F::cross_entropy(in[0], in[1], F::CrossEntropyOptions().weight(w).label_smoothing(0.1).ignore_index(3));
  }, [] {
    return std::vector<OpSample>{{{param({4, 5}, 44), index_tensor({0, 3, 2, 4})}, "weight, smoothing 0.1, one ignored"}};
  }, [] {
    return OpBench({B(kLogits), bench_indices({256}, 1000), bench_rand({1000}, 0.5, 2.0, false)}, [](In in) {
      return F::cross_entropy(in[0], in[1], F::CrossEntropyOptions().weight(in[2]).label_smoothing(0.1).ignore_index(3));
    });
  });
  add("cross_entropy_nd", [](In in) {
    Tensor w = tensor({1.5, 0.25, 0.75}, DType::f64);
    return F::cross_entropy(in[0], in[1], F::CrossEntropyOptions().weight(w).label_smoothing(0.2).ignore_index(1).reduction(Reduction::none));
  }, [] {
    return std::vector<OpSample>{{{param({2, 3, 2, 2}, 45), index_tensor({0, 2, 1, 2, 1, 0, 0, 2}, {2, 2, 2})},
                                  "[N, C, d1, d2], weight, smoothing 0.2, ignore_index 1, none"}};
  }, [] {  // segmentation-like: 21 classes over 32×32 pixels, batch 16
    return OpBench({B({16, 21, 32, 32}), bench_indices({16, 32, 32}, 21), bench_rand({21}, 0.5, 2.0, false)}, [](In in) {
      return F::cross_entropy(in[0], in[1], F::CrossEntropyOptions().weight(in[2]).label_smoothing(0.2).ignore_index(1).reduction(Reduction::none));
    });
  });
  add("cross_entropy_nd_sum", [](In in) { return F::cross_entropy(in[0], in[1], Reduction::sum); }, [] {
    return std::vector<OpSample>{{{param({2, 4, 3}, 46), index_tensor({0, 3, 1, 2, 2, 0}, {2, 3})}, "[N, C, d], sum"}};
  }, [] { return OpBench({B({16, 21, 32, 32}), bench_indices({16, 32, 32}, 21)}); });
  add("nll_loss_options", [](In in) {
    Tensor w = tensor({1.0, 0.5, 2.0, 3.0}, DType::f64);
    return F::nll_loss(in[0], in[1], F::NllLossOptions().weight(w).ignore_index(0));
  }, [] {
    return std::vector<OpSample>{{{param({3, 4, 2}, 47), index_tensor({1, 0, 3, 2, 0, 0}, {3, 2})}, "[N, C, d], weight, ignore_index 0, mean"}};
  }, [] {
    return OpBench({B(kLogits), bench_indices({256}, 1000), bench_rand({1000}, 0.5, 2.0, false)}, [](In in) {
      return F::nll_loss(in[0], in[1], F::NllLossOptions().weight(in[2]).ignore_index(0));
    });
  });
  add("rms_norm", [](In in) { return F::rms_norm(in[0], {3, 4}, in[1]); }, [] {
    return std::vector<OpSample>{{{param({2, 3, 4}, 48), param({3, 4}, 49)}, "two trailing dims, weight, default eps"}};
  }, [] { return OpBench({B(kRows), B({1024})}, [](In in) { return F::rms_norm(in[0], {1024}, in[1]); }); });
  add("rms_norm_no_weight", [](In in) { return F::rms_norm(in[0], {5}, Tensor(), 1e-3); }, [] {
    return std::vector<OpSample>{{{param({3, 5}, 50)}, "last dim, eps 1e-3"}};
  }, [] { return OpBench({B(kRows)}, [](In in) { return F::rms_norm(in[0], {1024}, Tensor(), 1e-3); }); });
  add("nll_loss", [](In in) { return F::nll_loss(in[0], in[1], Reduction::sum); }, [] {
    return std::vector<OpSample>{{{param({3, 4}, 32), index_tensor({1, 1, 3})}, "sum"}};
  }, [] { return OpBench({B(kLogits), bench_indices({256}, 1000)}); });
  add("mse_loss", [](In in) { return F::mse_loss(in[0], in[1]); }, [] {
    return std::vector<OpSample>{{{param({3, 2}, 33), param({3, 2}, 34)}, "mean"}};
  }, [] { return OpBench({B(kRows), constant(kRows)}); });
  add("half_mse_loss", [](In in) { return F::half_mse_loss(in[0], in[1]); }, [] {
    return std::vector<OpSample>{{{param({4, 2}, 35), randn64({4, 2}, 36)}, "1/(2n)"}};
  }, [] { return OpBench({B(kRows), constant(kRows)}); });
  add("l1_loss", [](In in) { return F::l1_loss(in[0], in[1], Reduction::sum); }, [] {
    return std::vector<OpSample>{{{param({3, 2}, 37), randn64({3, 2}, 38)}, "sum"}};
  }, [] { return OpBench({B(kRows), constant(kRows)}); });
  add("huber_loss", [](In in) { return F::huber_loss(in[0], in[1], Reduction::mean, 0.5); }, [] {
    return std::vector<OpSample>{{{param({3, 3}, 39), randn64({3, 3}, 40)}, "delta 0.5"}};
  }, [] { return OpBench({B(kRows), constant(kRows)}); });
  add("binary_cross_entropy", [](In in) { return F::binary_cross_entropy(in[0], in[1]); }, [] {
    Generator g(41);
    return std::vector<OpSample>{{{rand({3, 2}, DType::f64, g, 0.1, 0.9).requires_grad_(), rand({3, 2}, DType::f64, g)},
                                  "probabilities in (0.1, 0.9)"}};
  }, [] { return OpBench({bench_rand(kRows, 0.1, 0.9), bench_rand(kRows, 0.0, 1.0, false)}); });
  add("binary_cross_entropy_with_logits", [](In in) { return F::binary_cross_entropy_with_logits(in[0], in[1]); }, [] {
    Generator g(42);
    return std::vector<OpSample>{{{param({3, 2}, 43), rand({3, 2}, DType::f64, g)}, "mean"}};
  }, [] { return OpBench({B(kRows), bench_rand(kRows, 0.0, 1.0, false)}); });
  // attention: tiles of 2 × 3 (2 × 2) so that these small shapes cross tile boundaries
  using F::AttentionOptions;
  add("scaled_dot_product_attention", [](In in) {
    return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().tiles(2, 3));
  }, [] {
    return std::vector<OpSample>{{{param({2, 5, 3}, 44), param({2, 7, 3}, 45), param({2, 7, 4}, 46)}, "T 5 ≠ S 7"},
                                 {{param({3, 2}, 47), param({4, 2}, 48), param({4, 1}, 49)}, "no batch dimensions"}};
  }, [] { return OpBench(qkv(), [](In in) { return F::scaled_dot_product_attention(in[0], in[1], in[2]); }); });
  add("scaled_dot_product_attention_causal", [](In in) {
    return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().causal(true).scale(0.7).tiles(2, 2));
  }, [] {
    return std::vector<OpSample>{{{param({1, 2, 5, 3}, 50), param({1, 2, 5, 3}, 51), param({1, 2, 5, 2}, 52)}, "T = S = 5"},
                                 {{param({2, 4, 2}, 53), param({2, 6, 2}, 54), param({2, 6, 3}, 55)}, "T 4 < S 6"},
                                 {{param({1, 5, 2}, 56), param({1, 3, 2}, 57), param({1, 3, 2}, 58)}, "T 5 > S 3"}};
  }, [] {
    return OpBench(qkv(), [](In in) {
      return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().causal(true).scale(0.7));
    });
  });
  add("scaled_dot_product_attention_mask", [](In in) {
    return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().mask(in[3]).tiles(2, 3));
  }, [] {
    // −∞ entries, and row 2 masked entirely (output and gradients 0)
    const double inf = std::numeric_limits<double>::infinity();
    Tensor mask = randn64({4, 5}, 59);
    double* m = mask.mutable_data<double>();
    m[1] = m[7] = m[19] = -inf;
    for (int j = 10; j < 15; ++j) m[j] = -inf;
    return std::vector<OpSample>{
        {{param({2, 4, 3}, 60), param({2, 5, 3}, 61), param({2, 5, 2}, 62), mask.requires_grad_()}, "[T, S] mask with −∞"},
        {{param({2, 2, 3, 2}, 63), param({2, 2, 4, 2}, 64), param({2, 2, 4, 2}, 65), param({2, 1, 1, 4}, 66)},
         "per-batch key mask [B, 1, 1, S]"}};
  }, [] {
    std::vector<Tensor> in = qkv();
    in.push_back(constant({256, 256}));
    return OpBench(in, [](In x) { return F::scaled_dot_product_attention(x[0], x[1], x[2], AttentionOptions().mask(x[3])); });
  });
  add("scaled_dot_product_attention_dropout", [](In in) {
    Generator g(67);  // re-seeded per evaluation: the same entries dropped every time
    return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout(0.3, g).tiles(2, 3));
  }, [] {
    return std::vector<OpSample>{{{param({2, 4, 3}, 68), param({2, 5, 3}, 69), param({2, 5, 2}, 70)}, "p = 0.3"}};
  }, [] {
    return OpBench(qkv(), [](In in) {
      Generator g(67);
      return F::scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout(0.3, g));
    });
  });
}

}  // namespace

bool detail::queue_ops() {
  register_op_group(&add_all);
  return true;
}

void register_ops() {
  detail::queue_ops();
  (void)op_registry();  // runs the queued group, once
}

}  // namespace tapegrad::nn
