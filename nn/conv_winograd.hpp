#pragma once
/// \file conv_winograd.hpp
/// Which algorithm runs conv2d and its two gradients, and the Winograd F(2×2, 3×3) kernels.
///
/// conv2d, its input gradient and its weight gradient (nn/linear_conv.cpp) each run one of two
/// algorithms:
///  - **im2col**: every shape. One image at a time, its columns [C·kh·kw, oh·ow] into a scratch
///    buffer and one matrix product.
///  - **winograd** F(2×2, 3×3): 3×3 kernels at stride 1, dilation 1, padding 0, 1 or 2
///    (winograd_applies). Each 4×4 input tile and 3×3 filter is transformed, the 16 transformed
///    positions are 16 matrix products over the channels, with the tiles of every image of the
///    batch side by side (fixed blocks of whole tile rows, about kWinogradTileBlock tiles), and
///    each product's 4×4 result is transformed back to a 2×2 output tile: 16 multiplies per 4
///    outputs instead of 36 (2.25× fewer). The transforms are vectorised over a block's tiles;
///    for float on AVX2 builds each runs in one pass between the planes and the products'
///    operands, in registers (the same operations in the same order as the generic path, so the
///    same bits).
///    The input gradient is the same kernel on the output gradient, with the filters rotated by 180°
///    and their two channel axes swapped, at padding 2 − p; the weight gradient is the adjoint of
///    the same transforms (16 products [out, tiles]·[tiles, in], summed over fixed groups of blocks).
///
/// Under `automatic` (the default) winograd runs where it applies and both channel counts are at
/// least kWinogradMinChannels (conv_choice); measured in bench/bench_nn.cpp (README, "Performance").
/// The choice can be forced with the environment variable `TAPEGRAD_CONV=im2col|winograd|auto`
/// (read once, at the first convolution) or set_conv_algorithm(); a forced winograd still leaves to
/// im2col the shapes it does not apply to. The three ops choose alike (from the forward
/// convolution's channel counts), so a convolution and every order of its gradients run one
/// algorithm. Results do not depend on the thread count: tile blocks are fixed, each output
/// element is written by one block, the weight gradient's group partials are added in order, and
/// the products run on one BLAS thread each.
/// float32 and float64 alike; the two algorithms agree to rounding (tests/nn/test_conv_winograd.cpp).
#include <cstdint>
#include <string>
#include <string_view>

namespace tapegrad::nn {

/// `automatic` picks per convolution (conv_choice); the others force one algorithm where it applies.
enum class ConvAlgorithm {
  automatic,  ///< winograd where it applies and the channel counts are large enough, im2col otherwise
  im2col,     ///< im2col + one matrix product per image, for every shape
  winograd,   ///< Winograd F(2×2, 3×3) wherever winograd_applies, im2col elsewhere
};

/// "auto", "im2col" or "winograd".
std::string conv_algorithm_name(ConvAlgorithm algorithm);
/// The inverse of conv_algorithm_name; std::invalid_argument naming the accepted values otherwise.
ConvAlgorithm parse_conv_algorithm(std::string_view name);

/// The algorithm setting used by later convolutions, in every thread.
void set_conv_algorithm(ConvAlgorithm algorithm);
/// The current setting: set_conv_algorithm's last value, or TAPEGRAD_CONV (read on the first call;
/// unset means automatic). A bad TAPEGRAD_CONV value throws std::invalid_argument naming the
/// variable, at every call until it is fixed or overridden.
ConvAlgorithm conv_algorithm();

/// RAII: an algorithm setting for a scope (tests, benchmarks). The setting is process-wide.
class ConvAlgorithmGuard {
 public:
  /// set_conv_algorithm(algorithm) until the guard is destroyed, which restores the previous setting.
  explicit ConvAlgorithmGuard(ConvAlgorithm algorithm) : prev_(conv_algorithm()) { set_conv_algorithm(algorithm); }
  ~ConvAlgorithmGuard() { set_conv_algorithm(prev_); }
  ConvAlgorithmGuard(const ConvAlgorithmGuard&) = delete;
  ConvAlgorithmGuard& operator=(const ConvAlgorithmGuard&) = delete;

 private:
  ConvAlgorithm prev_;
};

/// Channel count (input and output alike) from which `automatic` picks winograd: below it the 16
/// products are too thin (bench_nn BM_Conv2dAlgorithmChannels: at [32, c, 14, 14], c → c, forward
/// + backward, winograd is 0.8× im2col's time at 8 channels and 1.07× at 4; the small CNN's first
/// layer, 1 → 32 channels, stays on im2col, where winograd takes 4× its time).
inline constexpr int64_t kWinogradMinChannels = 8;
/// Output tiles (2×2 each) per block of the Winograd kernels, rounded up to whole tile rows (of any
/// image): the unit of their threads and the n of their products. Fixed, so results do not depend
/// on the thread count. Each thread keeps its blocks' scratch (16·(in + out channels)·block
/// elements, about 0.6 MB at 32 → 64 channels in float32) between calls. 96 (98 tiles at 14 × 14)
/// rather than 128 (133): at 32 ↔ 64 channels every product then falls under kernels::gemm_raw's
/// small-product volume and runs on libxsmm, without OpenBLAS's packing (the input gradient's and
/// the weight gradient's were on OpenBLAS), and the scratch stays well inside a 1 MiB L2: bench_nn
/// BM_Conv2dAlgorithmBackward/1/1 about 0.9× (AMD EPYC, AVX2, shared).
inline constexpr int64_t kWinogradTileBlock = 96;

/// The window of one convolution, as the algorithm choice sees it.
struct ConvWindow {
  int64_t kh;  ///< kernel height
  int64_t kw;  ///< kernel width
  int64_t sh;  ///< stride, rows
  int64_t sw;  ///< stride, columns
  int64_t ph;  ///< padding, rows
  int64_t pw;  ///< padding, columns
  int64_t dh;  ///< dilation, rows
  int64_t dw;  ///< dilation, columns
};

/// Whether Winograd F(2×2, 3×3) can run this window: 3×3 kernel, stride 1, dilation 1, padding
/// 0, 1 or 2 in both directions (so the input gradient's padding 2 − p is one of them too).
bool winograd_applies(const ConvWindow& window);

/// The algorithm (im2col or winograd, never automatic) that conv2d and its gradients run for a
/// convolution of `in_channels` → `out_channels` channels over `window`, under the current setting.
ConvAlgorithm conv_choice(int64_t in_channels, int64_t out_channels, const ConvWindow& window);

namespace detail {

/// Sizes of one Winograd convolution y[N, Co, oh, ow] = x[N, Ci, h, w] ⋆ filters (3×3, stride 1).
struct WinogradShape {
  int64_t n;   ///< images
  int64_t ci;  ///< input channels
  int64_t h;   ///< input height
  int64_t w;   ///< input width
  int64_t co;  ///< output channels
  int64_t ph;  ///< padding, rows (0..2)
  int64_t pw;  ///< padding, columns (0..2)
  int64_t oh;  ///< output height, h + 2·ph − 2
  int64_t ow;  ///< output width, w + 2·pw − 2
};

/// y[n, o, p, q] = bias[o] + Σ_{c,i,j} f(o, c, i, j)·x[n, c, p − ph + i, q − pw + j] (0 outside x),
/// with f(o, c, i, j) = weight[o, c, i, j] (weight [co, ci, 3, 3]) or, when `flipped`,
/// weight[c, o, 2 − i, 2 − j] (weight [ci, co, 3, 3]: the input gradient of a convolution whose
/// weight it is). bias may be null. Overwrites y [n, co, oh, ow].
template <class T>
void winograd_conv(const WinogradShape& s, const T* x, const T* weight, bool flipped, const T* bias, T* y);

/// dweight[o, c, i, j] = Σ_{n,p,q} grad[n, o, p, q]·x[n, c, p − ph + i, q − pw + j]: the weight
/// gradient of winograd_conv (not flipped). grad [n, co, oh, ow]; overwrites dweight [co, ci, 3, 3].
template <class T>
void winograd_weight_grad(const WinogradShape& s, const T* grad, const T* x, T* dweight);

/// Whether float convolutions use the one-pass AVX2 transforms (in builds with AVX2; the default)
/// or the generic xsimd ones, which give the same bits. For tests: both paths run in every build
/// that has both.
bool one_pass_transforms();

/// RAII: the generic transforms for float, process-wide, for a scope (tests compare the paths; not
/// for concurrent use by threads that want different paths).
class GenericTransformsScope {
 public:
  /// The generic transforms until the scope ends.
  GenericTransformsScope();
  /// Restores the previous choice.
  ~GenericTransformsScope();
  GenericTransformsScope(const GenericTransformsScope&) = delete;
  GenericTransformsScope& operator=(const GenericTransformsScope&) = delete;

 private:
  bool prev_;
};

}  // namespace detail
}  // namespace tapegrad::nn
