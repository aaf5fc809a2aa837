// scaled_dot_product_attention: one recorded op with a FlashAttention-style forward (tiles, online
// softmax, one log-sum-exp per query row kept) and a FlashAttention-2 backward that recomputes the
// tiles; attention_reference is the same attention as a composite of recorded ops, which is also
// what the backward records under create_graph.
//
// Default tiles, 128 query rows × 128 key rows, measured on an AMD EPYC (Zen 3, 2 cores, AVX2,
// 512 KiB L2 per core; float32, forward + backward, bench_nn's BM_AttentionTiles, CPU-time medians
// of 5 under load): [8, 8, 256, 64] 74.6 ms (64×128: 77.6, 128×256: 82.0, 64×256: 90.3,
// 32×256: 96.0) and [1, 4, 1024, 32] 42.1 ms (64×128: 48.0, 128×256: 47.2, 64×256: 48.3). A
// float32 scores tile is then 64 KiB.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "autograd/debug.hpp"
#include "autograd/functions.hpp"
#include "autograd/kernels.hpp"
#include "autograd/node.hpp"
#include "autograd/parallel.hpp"
#include "nn/functional.hpp"

namespace tapegrad::nn::functional {

double AttentionOptions::scale_for(int64_t d) const {
  if (scale_set_) return scale_;
  return d > 0 ? 1.0 / std::sqrt(static_cast<double>(d)) : 1.0;
}

namespace {

constexpr const char* kOp = "tapegrad::nn::scaled_dot_product_attention";

/// Where row i of batch·head b of q, k, v or the output starts: with b = outer·heads + head, at
/// outer·batch + head·head_stride + offset + i·row. Contiguous [bh, T, d]: heads 1, batch T·d, row d.
/// Packed qkv [N, T, 3E] (qkv_packed_attention): heads H, batch T·3E, head_stride d, row 3E, offset
/// 0, E or 2E; its output [N, T, E]: heads H, batch T·E, head_stride d, row E.
struct Layout {
  int64_t heads = 1, batch = 0, head_stride = 0, offset = 0, row = 0;
  int64_t at(int64_t b, int64_t i) const { return b / heads * batch + b % heads * head_stride + offset + i * row; }
  static Layout contiguous(int64_t rows, int64_t width) { return {1, rows * width, 0, 0, width}; }
};

/// Everything the kernels need besides the data, fixed at the call and captured by value.
struct Problem {
  Shape batch;   // leading dimensions of q, k, v
  Shape scores;  // batch + [T, S]
  int64_t bh = 1, t = 0, s = 0, d = 0, dv = 0;
  double scale = 1.0;
  bool causal = false;
  double p = 0.0;     // dropout probability
  uint64_t seed = 0;  // dropout hash seed (one draw of the generator)
  int64_t bq = 128, bk = 128;
  // The mask's element (b, i, j) is at mask_offset[b] + i·mask_row + j·mask_col (0 strides broadcast).
  std::vector<int64_t> mask_offset;
  int64_t mask_row = 0, mask_col = 0;
  // q, k, v and the output (and their gradients, which share their layouts)
  Layout lq, lk, lv, lo;
};

std::string shapes(const Tensor& q, const Tensor& k, const Tensor& v) {
  return "q " + to_string(q.shape()) + ", k " + to_string(k.shape()) + ", v " + to_string(v.shape());
}

/// The mask as an additive floating tensor of q's dtype, checked to broadcast to [..., T, S]; the
/// one place masks are interpreted. Once the bool dtype exists its branch is:
///     if (mask.dtype() == DType::b8)
///       return where(mask, scalar(0.0, q.dtype()), scalar(-inf, q.dtype()));  // true = attend
Tensor additive_mask(const char* op, const Tensor& mask, DType dtype, const Shape& target,
                     const std::string& operands) {
  if (!mask.defined()) return mask;
  const bool boolean = mask.dtype() == DType::b8;
  if (!boolean && mask.dtype() != dtype)
    throw DTypeError(std::string(op) + ": the mask must be bool (true = attend) or additive with q's dtype " +
                     dtype_name(dtype) + ", got " + dtype_name(mask.dtype()) + " " + to_string(mask.shape()));
  bool ok = mask.dim() <= static_cast<int64_t>(target.size());
  for (int64_t i = 1; ok && i <= mask.dim(); ++i) {
    const int64_t m = mask.shape()[mask.shape().size() - i], t = target[target.size() - i];
    ok = m == t || m == 1;
  }
  if (!ok)
    throw ShapeError(std::string(op) + ": mask " + to_string(mask.shape()) + " does not broadcast to the scores " +
                     to_string(target) + " of " + operands);
  // PyTorch's bool mask: true takes part in attention, false is removed (−∞ added to its score).
  if (boolean) return where(mask, scalar(0.0, dtype), scalar(-std::numeric_limits<double>::infinity(), dtype));
  return mask;
}

/// Fixes what every entry point shares once pb's sizes (batch, t, s, d, dv) are known: checks the
/// options, the mask against the scores' shape batch + [T, S], and draws the dropout seed last
/// (nothing drawn on error). `operands` describes the inputs in error messages.
void configure(const char* op, Problem& pb, const AttentionOptions& o, DType dtype, const std::string& operands,
               Tensor& mask) {
  const double p = o.dropout();
  if (!(p >= 0 && p < 1))
    throw std::invalid_argument(std::string(op) + ": dropout must be in [0, 1), got " + std::to_string(p));
  if (o.causal() && o.mask().defined())
    throw std::invalid_argument(std::string(op) +
                                ": causal cannot be combined with an explicit mask (as PyTorch); got mask " +
                                to_string(o.mask().shape()) + " with " + operands);
  if (o.query_tile() < 1 || o.key_tile() < 1)
    throw std::invalid_argument(std::string(op) + ": tiles must be ≥ 1, got " + std::to_string(o.query_tile()) + " × " +
                                std::to_string(o.key_tile()));
  pb.bh = pb.batch.numel(op);
  pb.scores = pb.batch;
  pb.scores.push_back(pb.t);
  pb.scores.push_back(pb.s);
  mask = additive_mask(op, o.mask(), dtype, pb.scores, operands);
  pb.scale = o.scale_for(pb.d);
  pb.causal = o.causal();
  pb.p = p;
  pb.bq = o.query_tile();
  pb.bk = o.key_tile();
  if (mask.defined()) {
    // strides of the mask padded on the left to the scores' rank, 0 where it broadcasts
    const size_t rank = pb.scores.size(), pad = rank - static_cast<size_t>(mask.dim());
    std::vector<int64_t> stride(rank, 0);
    for (int64_t i = mask.dim() - 1, st = 1; i >= 0; --i) {
      const int64_t n = mask.shape()[static_cast<size_t>(i)];
      stride[pad + static_cast<size_t>(i)] = n == 1 ? 0 : st;
      st *= n;
    }
    pb.mask_row = stride[rank - 2];
    pb.mask_col = stride[rank - 1];
    pb.mask_offset.assign(static_cast<size_t>(pb.bh), 0);
    for (int64_t b = 0; b < pb.bh; ++b)
      for (int64_t i = static_cast<int64_t>(rank) - 3, rest = b; i >= 0; --i) {
        const int64_t n = pb.scores[static_cast<size_t>(i)];
        pb.mask_offset[static_cast<size_t>(b)] += (rest % n) * stride[static_cast<size_t>(i)];
        rest /= n;
      }
  }
  Generator& gen = o.generator() ? *o.generator() : default_generator();
  if (p > 0) pb.seed = gen.engine()();
}

/// Validates separate q, k, v ([..., T, d], contiguous) and fixes the problem.
Problem make_problem(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o, Tensor& mask) {
  if (!q.defined() || !k.defined() || !v.defined())
    throw std::invalid_argument(std::string(kOp) + ": got an undefined tensor");
  if (!is_floating(q.dtype()) || k.dtype() != q.dtype() || v.dtype() != q.dtype())
    throw DTypeError(std::string(kOp) + ": q, k and v must share one floating dtype, got " + dtype_name(q.dtype()) +
                     ", " + dtype_name(k.dtype()) + " and " + dtype_name(v.dtype()) + " (" + shapes(q, k, v) + ")");
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim())
    throw ShapeError(std::string(kOp) +
                     ": q [..., T, d], k [..., S, d] and v [..., S, dv] need the same rank ≥ 2, got " +
                     shapes(q, k, v));
  Problem pb;
  pb.batch = Shape(q.shape().begin(), q.shape().end() - 2);
  if (Shape(k.shape().begin(), k.shape().end() - 2) != pb.batch ||
      Shape(v.shape().begin(), v.shape().end() - 2) != pb.batch)
    throw ShapeError(std::string(kOp) + ": the batch dimensions of q, k and v must be equal, got " + shapes(q, k, v));
  if (k.size(-1) != q.size(-1))
    throw ShapeError(std::string(kOp) + ": q and k must have the same head dimension d, got " + shapes(q, k, v));
  if (v.size(-2) != k.size(-2))
    throw ShapeError(std::string(kOp) + ": k and v must have the same number of keys S, got " + shapes(q, k, v));
  pb.t = q.size(-2);
  pb.s = k.size(-2);
  pb.d = q.size(-1);
  pb.dv = v.size(-1);
  configure(kOp, pb, o, q.dtype(), shapes(q, k, v), mask);
  pb.lq = Layout::contiguous(pb.t, pb.d);
  pb.lk = Layout::contiguous(pb.s, pb.d);
  pb.lv = Layout::contiguous(pb.s, pb.dv);
  pb.lo = Layout::contiguous(pb.t, pb.dv);
  return pb;
}

constexpr const char* kPackedOp = "tapegrad::nn::qkv_packed_attention";

/// Validates a packed qkv [N, T, 3E] with `heads` heads and fixes the problem: batch [N, H], T = S,
/// d = dv = E/H, q, k and v read in place from the packed rows, the output written as [N, T, E].
Problem make_packed_problem(const Tensor& qkv, int64_t heads, const AttentionOptions& o, Tensor& mask) {
  if (!qkv.defined()) throw std::invalid_argument(std::string(kPackedOp) + ": got an undefined tensor");
  const std::string operand = "qkv " + to_string(qkv.shape()) + " with " + std::to_string(heads) + " heads";
  if (!is_floating(qkv.dtype()))
    throw DTypeError(std::string(kPackedOp) + ": qkv must be floating, got " + dtype_name(qkv.dtype()) + " " +
                     to_string(qkv.shape()));
  if (heads < 1 || qkv.dim() != 3 || qkv.size(2) % (3 * heads) != 0)
    throw ShapeError(std::string(kPackedOp) + ": qkv must be [N, T, 3E] with E a multiple of heads ≥ 1, got " +
                     operand);
  Problem pb;
  const int64_t n = qkv.size(0), t = qkv.size(1), e = qkv.size(2) / 3, d = e / heads;
  pb.batch = {n, heads};
  pb.t = pb.s = t;
  pb.d = pb.dv = d;
  configure(kPackedOp, pb, o, qkv.dtype(), operand, mask);
  pb.lq = {heads, t * 3 * e, d, 0, 3 * e};
  pb.lk = {heads, t * 3 * e, d, e, 3 * e};
  pb.lv = {heads, t * 3 * e, d, 2 * e, 3 * e};
  pb.lo = {heads, t * e, d, 0, e};
  return pb;
}

// ---- dropout: a counter-based stream, the same whichever order the tiles run in ----------------

/// 1/(1 − p) when entry (b, i, j) survives dropout, 0 when it is dropped: splitmix64 of the seed
/// and the entry's flat index gives a uniform u in [0, 1), and the entry survives when u ≥ p.
template <class T>
T dropout_factor(const Problem& pb, int64_t b, int64_t i, int64_t j) {
  uint64_t z = pb.seed + (static_cast<uint64_t>((b * pb.t + i) * pb.s + j) + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
  return u >= pb.p ? static_cast<T>(1.0 / (1.0 - pb.p)) : T(0);
}

/// The dropout factors of every entry as a tensor of shape batch + [T, S] (for the composite).
Tensor dropout_factors(const Problem& pb, DType dtype) {
  Tensor z = Tensor::empty(pb.scores, dtype);
  kernels::dispatch(dtype, "scaled_dot_product_attention", [&](auto zero) {
    using T = decltype(zero);
    T* out = z.mutable_data<T>();
    for (int64_t b = 0; b < pb.bh; ++b)
      for (int64_t i = 0; i < pb.t; ++i)
        for (int64_t j = 0; j < pb.s; ++j) *out++ = dropout_factor<T>(pb, b, i, j);
  });
  return z;
}

// ---- tile kernels -------------------------------------------------------------------------------

/// x ← exp(x − shift) in place; returns Σ exp(x − shift). exp(−∞) = 0. simd::exp_shift_row: AVX-512
/// or baseline chosen at run time.
template <class T>
T exp_shift_row(T* x, int64_t n, T shift) {
  return simd::exp_shift_row(x, n, shift);
}

/// The scores tile s [nq, nk] = q_tile·k_tileᵀ·scale + mask (−∞ above the causal diagonal) for
/// batch·head b, query rows i0.., key rows j0...
template <class T>
void score_tile(const Problem& pb, const T* q, const T* k, const T* mask, int64_t b, int64_t i0, int64_t nq, int64_t j0,
                int64_t nk, T* s) {
  kernels::gemm_strided<T>(q + pb.lq.at(b, i0), pb.lq.row, k + pb.lk.at(b, j0), pb.lk.row, s, nk, nq, nk, pb.d, false,
                           true, T(0));
  const T scale = static_cast<T>(pb.scale), ninf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < nq; ++r) {
    T* row = s + r * nk;
    if (mask) {
      const T* m = mask + pb.mask_offset[static_cast<size_t>(b)] + (i0 + r) * pb.mask_row + j0 * pb.mask_col;
      if (pb.mask_col == 1)
        for (int64_t c = 0; c < nk; ++c) row[c] = row[c] * scale + m[c];
      else
        for (int64_t c = 0; c < nk; ++c) row[c] = row[c] * scale + m[0];
    } else {
      for (int64_t c = 0; c < nk; ++c) row[c] *= scale;
    }
    if (pb.causal)
      for (int64_t c = std::max<int64_t>(0, i0 + r + 1 - j0); c < nk; ++c) row[c] = ninf;
  }
}

/// The keys a query tile [i0, i0 + nq) can attend: all S, or with causal those j < i0 + nq.
int64_t key_end(const Problem& pb, int64_t i0, int64_t nq) { return pb.causal ? std::min(pb.s, i0 + nq) : pb.s; }

/// fn(b0, b1) over the batch·head range [0, bh) in parallel (a head's tiles, scratch and outputs are
/// its own: rows of q, k, v, the output, lse and the mask gradient, or a head's columns of the packed
/// rows), each head on one thread, so the bits do not depend on the thread count.
template <class F>
void over_heads(const Problem& pb, F&& fn) {
  const int64_t cost = pb.t * std::max<int64_t>(pb.s, 1) * std::max<int64_t>(pb.d + pb.dv, 1);
  parallel::parallel_for(0, pb.bh, parallel::rows_grain(cost), fn);
}

/// out [bh, T, dv] and lse [bh, T] (+∞ on rows whose keys are all masked, whose output is 0).
template <class T>
void forward_kernel(const Problem& pb, const T* q, const T* k, const T* v, const T* mask, T* out, T* lse) {
  const T ninf = -std::numeric_limits<T>::infinity();
  over_heads(pb, [&](int64_t b0, int64_t b1) {
    std::vector<T> s(static_cast<size_t>(pb.bq * pb.bk)), m(static_cast<size_t>(pb.bq)), l(static_cast<size_t>(pb.bq));
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t i0 = 0; i0 < pb.t; i0 += pb.bq) {
        const int64_t nq = std::min(pb.bq, pb.t - i0);
        T* o = out + pb.lo.at(b, i0);
        const int64_t ldo = pb.lo.row;
        if (pb.s == 0)  // otherwise the first gemm (beta 0) writes it
          for (int64_t r = 0; r < nq; ++r) std::fill_n(o + r * ldo, pb.dv, T(0));
        std::fill(m.begin(), m.end(), ninf);
        std::fill(l.begin(), l.end(), T(0));
        const int64_t s_end = key_end(pb, i0, nq);
        for (int64_t j0 = 0; j0 < s_end; j0 += pb.bk) {
          const int64_t nk = std::min(pb.bk, s_end - j0);
          score_tile(pb, q, k, mask, b, i0, nq, j0, nk, s.data());
          for (int64_t r = 0; r < nq; ++r) {
            T* row = s.data() + r * nk;
            const T m_new = std::max(m[r], kernels::row_max(row, nk));
            if (m_new == ninf) {  // every key so far masked: nothing to add
              // ... or NaN scores, which row_max may skip: the row's output is NaN then (as
              // softmax's), not the 0 of a fully masked row
              if (std::any_of(row, row + nk, [](T x) { return std::isnan(x); }))
                l[r] = std::numeric_limits<T>::quiet_NaN();
              std::fill_n(row, nk, T(0));
              continue;
            }
            const T alpha = std::exp(m[r] - m_new);  // 0 when m was −∞
            l[r] = l[r] * alpha + exp_shift_row(row, nk, m_new);
            m[r] = m_new;
            if (j0 > 0 && alpha != T(1))
              for (int64_t c = 0; c < pb.dv; ++c) o[r * ldo + c] *= alpha;
            if (pb.p > 0)
              for (int64_t c = 0; c < nk; ++c) row[c] *= dropout_factor<T>(pb, b, i0 + r, j0 + c);
          }
          kernels::gemm_strided<T>(s.data(), nk, v + pb.lv.at(b, j0), pb.lv.row, o, ldo, nq, pb.dv, nk, false, false,
                                   T(j0 > 0));
        }
        for (int64_t r = 0; r < nq; ++r) {
          T* lr = lse + b * pb.t + i0 + r;
          if (l[r] == T(0)) {  // a fully masked row: output 0 (already), gradient 0 through lse = +∞
                               // (a NaN l, from NaN scores, makes the row and lse NaN below)
            *lr = std::numeric_limits<T>::infinity();
            continue;
          }
          *lr = m[r] + std::log(l[r]);
          const T inv = T(1) / l[r];
          for (int64_t c = 0; c < pb.dv; ++c) o[r * ldo + c] *= inv;
        }
      }
    }
  });
}

/// The buffers a backward writes; null where that gradient is not needed. dmask is batch + [T, S].
template <class T>
struct GradBuffers {
  T *dq, *dk, *dv, *dmask;
};

/// FlashAttention-2's backward over key tiles (outer: dK, dV rows stay hot) × query tiles (inner).
template <class T>
void backward_kernel(const Problem& pb, const T* q, const T* k, const T* v, const T* mask, const T* out, const T* lse,
                     const T* dout, GradBuffers<T> g) {
  const size_t tile = static_cast<size_t>(pb.bq * pb.bk);
  const bool scores_grad = g.dq || g.dk || g.dmask;
  const T scale = static_cast<T>(pb.scale);
  over_heads(pb, [&](int64_t b0, int64_t b1) {
    std::vector<T> p(tile), ds(tile), pd(pb.p > 0 ? tile : 0), zf(pb.p > 0 ? tile : 0),
        rowdot(static_cast<size_t>(pb.t));
    for (int64_t b = b0; b < b1; ++b) {
      if (scores_grad)  // D_i = Σ_c dO_ic·O_ic
        for (int64_t i = 0; i < pb.t; ++i) {
          const T *dor = dout + pb.lo.at(b, i), *orow = out + pb.lo.at(b, i);
          T acc = 0;
          for (int64_t c = 0; c < pb.dv; ++c) acc += dor[c] * orow[c];
          rowdot[static_cast<size_t>(i)] = acc;
        }
      for (int64_t j0 = 0; j0 < pb.s; j0 += pb.bk) {
        const int64_t nk = std::min(pb.bk, pb.s - j0);
        const int64_t first = pb.causal ? j0 / pb.bq * pb.bq : 0;  // the first query tile with a row ≥ j0
        if (first >= pb.t) {                                       // causal keys after the last query: no gradient
          for (int64_t r = 0; r < nk; ++r) {
            if (g.dk) std::fill_n(g.dk + pb.lk.at(b, j0 + r), pb.d, T(0));
            if (g.dv) std::fill_n(g.dv + pb.lv.at(b, j0 + r), pb.dv, T(0));
          }
        }
        for (int64_t i0 = first; i0 < pb.t; i0 += pb.bq) {
          const T beta_k = i0 > first, beta_q = j0 > 0;  // the first contribution overwrites (no zero fill)
          const int64_t nq = std::min(pb.bq, pb.t - i0);
          score_tile(pb, q, k, mask, b, i0, nq, j0, nk, p.data());
          for (int64_t r = 0; r < nq; ++r) exp_shift_row(p.data() + r * nk, nk, lse[b * pb.t + i0 + r]);  // P
          const T* pv = p.data();  // the weights v was multiplied by: P, or P ∘ dropout
          if (pb.p > 0) {
            for (int64_t r = 0; r < nq; ++r)
              for (int64_t c = 0; c < nk; ++c) {
                zf[r * nk + c] = dropout_factor<T>(pb, b, i0 + r, j0 + c);
                pd[r * nk + c] = p[r * nk + c] * zf[r * nk + c];
              }
            pv = pd.data();
          }
          const T* do_i = dout + pb.lo.at(b, i0);
          const int64_t ldo = pb.lo.row;
          if (g.dv)  // dV += Pᵀ·dO
            kernels::gemm_strided<T>(pv, nk, do_i, ldo, g.dv + pb.lv.at(b, j0), pb.lv.row, nk, pb.dv, nq, true, false,
                                     beta_k);
          if (!scores_grad) continue;
          kernels::gemm_strided<T>(do_i, ldo, v + pb.lv.at(b, j0), pb.lv.row, ds.data(), nk, nq, nk, pb.dv, false, true,
                                   T(0));  // dP = dO·Vᵀ
          for (int64_t r = 0; r < nq; ++r) {
            const T dr = rowdot[static_cast<size_t>(i0 + r)];
            T* dsr = ds.data() + r * nk;
            const T* pr = p.data() + r * nk;
            if (pb.p > 0)
              for (int64_t c = 0; c < nk; ++c) dsr[c] = pr[c] * (dsr[c] * zf[r * nk + c] - dr);
            else
              for (int64_t c = 0; c < nk; ++c) dsr[c] = pr[c] * (dsr[c] - dr);  // dS = P ∘ (dP − D)
            if (g.dmask) std::copy_n(dsr, nk, g.dmask + (b * pb.t + i0 + r) * pb.s + j0);
            for (int64_t c = 0; c < nk; ++c) dsr[c] *= scale;
          }
          if (g.dq)
            kernels::gemm_strided<T>(ds.data(), nk, k + pb.lk.at(b, j0), pb.lk.row, g.dq + pb.lq.at(b, i0), pb.lq.row,
                                     nq, pb.d, nk, false, false, beta_q);
          if (g.dk)
            kernels::gemm_strided<T>(ds.data(), nk, q + pb.lq.at(b, i0), pb.lq.row, g.dk + pb.lk.at(b, j0), pb.lk.row,
                                     nk, pb.d, nq, true, false, beta_k);
        }
      }
    }
  });
}

// ---- the composite ------------------------------------------------------------------------------

/// −∞ above the causal diagonal (j > i), 0 elsewhere: [T, S].
Tensor causal_bias(const Problem& pb, DType dtype) {
  std::vector<double> values(static_cast<size_t>(pb.t * pb.s));
  for (int64_t i = 0; i < pb.t; ++i)
    for (int64_t j = 0; j < pb.s; ++j)
      values[static_cast<size_t>(i * pb.s + j)] = j > i ? -std::numeric_limits<double>::infinity() : 0.0;
  return tensor(values, {pb.t, pb.s}, dtype);
}

/// The attention weights softmax(q·kᵀ·scale + bias) in recorded ops, batch + [T, S], with rows whose
/// keys are all masked set to 0: their scores are clamped to the lowest finite value (a uniform
/// softmax, no NaN in either pass) and the weights multiplied by 0/1 per row. Elsewhere the clamp
/// changes nothing (exp of −∞ and of the lowest value both give 0). Dropout is not applied here.
Tensor composite_weights(const Problem& pb, const Tensor& q, const Tensor& k, const Tensor& mask) {
  Tensor scores = mul(matmul(q, transpose(k, -2, -1)), pb.scale);
  const Tensor bias = pb.causal ? causal_bias(pb, q.dtype()) : mask;
  if (!bias.defined()) return softmax(scores, -1);
  scores = add(scores, bias);
  Tensor alive;  // 1 on rows with a key left, 0 on fully masked rows; undefined when every row has one
  if (pb.s > 0) {
    NoGradGuard no_grad;
    const Tensor row_max = max(bias.detach(), {-1}, true);
    std::vector<double> flags = row_max.to_vector();
    bool all_alive = true;
    for (double& x : flags) {
      x = x > -std::numeric_limits<double>::infinity() ? 1.0 : 0.0;
      all_alive = all_alive && x == 1.0;
    }
    if (!all_alive) alive = tensor(flags, row_max.shape(), q.dtype());
  }
  if (!alive.defined()) return softmax(scores, -1);
  const double lowest =
      q.dtype() == DType::f32 ? std::numeric_limits<float>::lowest() : std::numeric_limits<double>::lowest();
  return mul(softmax(clamp(scores, lowest, std::numeric_limits<double>::infinity()), -1), alive);
}

/// Gradients of the attention for the upstream gradient `grad`, in differentiable ops (so
/// create_graph records them): dV = P̃ᵀ·g, dP = (g·Vᵀ) ∘ Z, dS = P ∘ (dP − Σ_j dP∘P), dQ = dS·K·scale,
/// dK = dSᵀ·Q·scale, dmask = dS, with P̃ = P ∘ Z the dropped weights.
Grads composite_backward(const Problem& pb, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const Tensor& grad, const bool needs[4]) {
  Tensor p = composite_weights(pb, q, k, mask);
  const Tensor z = pb.p > 0 ? dropout_factors(pb, q.dtype()) : Tensor();
  Grads out(4);
  if (needs[2]) out[2] = matmul(transpose(z.defined() ? mul(p, z) : p, -2, -1), grad);
  if (!(needs[0] || needs[1] || needs[3])) return out;
  Tensor dp = matmul(grad, transpose(v, -2, -1));
  if (z.defined()) dp = mul(dp, z);
  Tensor ds = mul(p, sub(dp, sum(mul(dp, p), {-1}, true)));
  if (needs[0]) out[0] = mul(matmul(ds, k), pb.scale);
  if (needs[1]) out[1] = mul(matmul(transpose(ds, -2, -1), q), pb.scale);
  if (needs[3]) out[3] = sum_to(ds, mask.shape());
  return out;
}

/// The fused forward into `out` (allocated in pb.lo's layout) and lse (batch + [T]). For the packed
/// op q, k and v are the same tensor, read through their layouts.
void run_forward(const Problem& pb, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, Tensor& out,
                 Tensor& lse) {
  kernels::dispatch(q.dtype(), "scaled_dot_product_attention", [&](auto z) {
    using T = decltype(z);
    forward_kernel<T>(pb, q.data<T>(), k.data<T>(), v.data<T>(), mask.defined() ? mask.data<T>() : nullptr,
                      out.mutable_data<T>(), lse.mutable_data<T>());
  });
}

/// The fused first-order backward into the given buffers (undefined where not needed; dq, dk and dv
/// are one buffer for the packed op). Every element of dq (when S > 0), dk and dv is written.
void run_backward(const Problem& pb, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                  const Tensor& out, const Tensor& lse, const Tensor& grad, const Tensor& dq, const Tensor& dk,
                  const Tensor& dv, const Tensor& dmask) {
  kernels::dispatch(q.dtype(), "scaled_dot_product_attention", [&](auto z) {
    using T = decltype(z);
    auto ptr = [](const Tensor& t) { return t.defined() ? t.mutable_data<T>() : nullptr; };
    backward_kernel<T>(pb, q.data<T>(), k.data<T>(), v.data<T>(), mask.defined() ? mask.data<T>() : nullptr,
                       out.data<T>(), lse.data<T>(), grad.data<T>(),
                       GradBuffers<T>{ptr(dq), ptr(dk), ptr(dv), ptr(dmask)});
  });
}

/// lse's shape: batch + [T].
Shape lse_shape(const Problem& pb) {
  Shape s = pb.batch;
  s.push_back(pb.t);
  return s;
}

/// q, k, v [N, H, T, d] of a packed qkv [N, T, 3E] in recorded ops (the composite's view of it).
std::array<Tensor, 3> split_packed(const Problem& pb, const Tensor& qkv) {
  const int64_t n = pb.batch[0], h = pb.batch[1];
  Tensor x = permute(reshape(qkv, {n, pb.t, 3, h, pb.d}), {2, 0, 3, 1, 4});  // [3, N, H, T, d]
  auto part = [&](int64_t i) { return reshape(slice(x, 0, i, i + 1), {n, h, pb.t, pb.d}); };
  return {part(0), part(1), part(2)};
}

/// [N, H, T, d] heads back to [N, T, E] in recorded ops.
Tensor merge_packed(const Problem& pb, const Tensor& heads) {
  return reshape(permute(heads, {0, 2, 1, 3}), {pb.batch[0], pb.t, pb.batch[1] * pb.dv});
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  Tensor mask;
  const Problem pb = make_problem(q, k, v, options, mask);
  Shape out_shape = pb.batch;
  out_shape.push_back(pb.t);
  out_shape.push_back(pb.dv);
  Tensor result = Tensor::empty(out_shape, q.dtype()), lse = Tensor::empty(lse_shape(pb), q.dtype());
  run_forward(pb, q, k, v, mask, result, lse);
  return record(
      "scaled_dot_product_attention", result, {q, k, v, mask}, save_for_backward(q, k, v, mask, lse),
      [pb](const BackwardContext& ctx) -> Grads {
        const Tensor &q = ctx.saved(0), &k = ctx.saved(1), &v = ctx.saved(2), &mask = ctx.saved(3), &lse = ctx.saved(4);
        const bool needs[4] = {ctx.needs(0), ctx.needs(1), ctx.needs(2), mask.defined() && ctx.needs(3)};
        if (grad_enabled()) return composite_backward(pb, q, k, v, mask, ctx.grad, needs);  // create_graph
        Tensor dq =
            needs[0] ? (pb.s > 0 ? Tensor::empty(q.shape(), q.dtype()) : zeros(q.shape(), q.dtype())) : Tensor();
        Tensor dk = needs[1] ? Tensor::empty(k.shape(), k.dtype()) : Tensor();
        Tensor dv = needs[2] ? Tensor::empty(v.shape(), v.dtype()) : Tensor();
        Tensor dmask = needs[3] ? zeros(pb.scores, q.dtype()) : Tensor();
        run_backward(pb, q, k, v, mask, ctx.result, lse, ctx.grad, dq, dk, dv, dmask);
        return {dq, dk, dv, dmask.defined() ? sum_to(dmask, mask.shape()) : Tensor()};
      },
      true);
}

Tensor qkv_packed_attention(const Tensor& qkv, int64_t heads, const AttentionOptions& options) {
  Tensor mask;
  const Problem pb = make_packed_problem(qkv, heads, options, mask);
  Tensor result = Tensor::empty({pb.batch[0], pb.t, heads * pb.dv}, qkv.dtype());
  Tensor lse = Tensor::empty(lse_shape(pb), qkv.dtype());
  run_forward(pb, qkv, qkv, qkv, mask, result, lse);
  return record(
      "qkv_packed_attention", result, {qkv, mask}, save_for_backward(qkv, mask, lse),
      [pb](const BackwardContext& ctx) -> Grads {
        const Tensor &qkv = ctx.saved(0), &mask = ctx.saved(1), &lse = ctx.saved(2);
        const bool dmask_needed = mask.defined() && ctx.needs(1);
        if (grad_enabled()) {  // create_graph: the composite over the split heads
          auto [q, k, v] = split_packed(pb, qkv);
          const Tensor grad = permute(reshape(ctx.grad, {pb.batch[0], pb.t, pb.batch[1], pb.dv}), {0, 2, 1, 3});
          const bool needs[4] = {ctx.needs(0), ctx.needs(0), ctx.needs(0), dmask_needed};
          Grads g = composite_backward(pb, q, k, v, mask, grad, needs);
          Tensor dqkv;
          if (ctx.needs(0)) {  // [3, N, H, T, d] -> [N, T, 3, H, d] -> [N, T, 3E]
            Tensor parts = cat({unsqueeze(g[0], 0), unsqueeze(g[1], 0), unsqueeze(g[2], 0)}, 0);
            dqkv = reshape(permute(parts, {1, 3, 0, 2, 4}), qkv.shape());
          }
          return {dqkv, g[3]};
        }
        // every element of dqkv (when T > 0) is written by the kernel: q's, k's and v's columns
        Tensor dqkv = ctx.needs(0) ? Tensor::empty(qkv.shape(), qkv.dtype()) : Tensor();
        Tensor dmask = dmask_needed ? zeros(pb.scores, qkv.dtype()) : Tensor();
        run_backward(pb, qkv, qkv, qkv, mask, ctx.result, lse, ctx.grad, dqkv, dqkv, dqkv, dmask);
        return {dqkv, dmask.defined() ? sum_to(dmask, mask.shape()) : Tensor()};
      },
      true);
}

Tensor qkv_packed_attention_reference(const Tensor& qkv, int64_t heads, const AttentionOptions& options) {
  Tensor mask;
  const Problem pb = make_packed_problem(qkv, heads, options, mask);
  auto [q, k, v] = split_packed(pb, qkv);
  Tensor p = composite_weights(pb, q, k, mask);
  if (pb.p > 0) p = mul(p, dropout_factors(pb, qkv.dtype()));
  return merge_packed(pb, matmul(p, v));
}

Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options) {
  ProfileScope composite("attention_reference", ScopeKind::composite);  // one row of the profiler's op table
  Tensor mask;
  const Problem pb = make_problem(q, k, v, options, mask);
  Tensor p = composite_weights(pb, q, k, mask);
  if (pb.p > 0) p = mul(p, dropout_factors(pb, q.dtype()));
  return matmul(p, v);
}

}  // namespace tapegrad::nn::functional
