// Adam's float32 update kernel (AVX-512, division by a Newton-refined reciprocal) against the same
// step computed in float64 from the kernel's own inputs: every element, every variant (weight decay,
// amsgrad, AdamW), lengths with and without a partial final vector. The PyTorch reference tests
// (test_pytorch_reference.cpp) use a handful of elements; this one covers the vector path.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <random>

#include "autograd/autograd.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

namespace {

std::map<std::string, std::vector<double>> state_of(const optim::Optimizer& opt) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : opt.state_dict())
    if (name.rfind("state.0.", 0) == 0) out[name.substr(8)] = t.to_vector();
  return out;
}

/// Runs `body` once per kernel path of Adam: the portable loop and, where the CPU has it, the
/// AVX-512 kernel (said to be skipped otherwise, never silently replaced by the portable one).
template <class F>
void for_each_adam_path(F&& body) {
  for (Isa isa : {Isa::portable, Isa::avx512}) {
    if (!isa_supported(isa)) {
      MESSAGE("skipped: this CPU (" << std::string(isa_name(cpu_isa())) << ") cannot run Adam's " << std::string(isa_name(isa)) << " kernel");
      continue;
    }
    IsaScope scope(isa);
    const std::string path = isa_name(isa);
    CAPTURE(path);
    body();
  }
}

struct Variant {
  const char* name;
  bool adamw;
  double weight_decay;
  bool amsgrad;
};

}  // namespace

TEST_CASE("Adam's float32 kernel matches a float64 step within a few ulp on every element") {
  for_each_adam_path([] {
    const double eps32 = std::ldexp(1.0, -24);
    for (const Variant& variant : {Variant{"Adam", false, 0.0, false}, Variant{"Adam weight_decay", false, 0.05, false},
                                   Variant{"Adam amsgrad", false, 0.0, true}, Variant{"AdamW", true, 0.05, false}}) {
      for (int64_t n : {7, 16, 1013}) {
        const std::string name = variant.name;
        CAPTURE(name);
        CAPTURE(n);
        std::mt19937_64 rng(static_cast<uint64_t>(n) * 7 + variant.amsgrad);
        std::uniform_real_distribution<double> u(0, 1);
        auto wide = [&] {  // sign · 10^U(-8, 3), a tenth of them exactly 0
          if (u(rng) < 0.1) return 0.0;
          return (u(rng) < 0.5 ? -1.0 : 1.0) * std::pow(10.0, -8.0 + 11.0 * u(rng));
        };
        std::vector<double> w0(static_cast<size_t>(n));
        for (auto& x : w0) x = wide();
        Tensor p = tensor(w0, {n}).requires_grad_();
        const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        auto options =
            optim::AdamOptions(lr).betas(b1, b2).eps(eps).weight_decay(variant.weight_decay).amsgrad(variant.amsgrad);
        std::unique_ptr<optim::Optimizer> opt;
        if (variant.adamw)
          opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{p}, options);
        else
          opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, options);

        double worst_update = 0;  // worst error of the weight change, relative to its size
        for (int t = 1; t <= 6; ++t) {
          std::vector<double> g(static_cast<size_t>(n));
          for (auto& x : g) x = wide();
          g[0] = 0;  // one element never sees a gradient: v stays 0, the step must stay 0 too
          p.set_grad(tensor(g, {n}));
          auto before = state_of(*opt);
          std::vector<double> w = p.to_vector();
          opt->step();
          auto after = state_of(*opt);
          std::vector<double> w_new = p.to_vector();
          // the kernel's float32 constants
          const double one_b1 = static_cast<float>(1 - b1), b2f = static_cast<float>(b2),
                       one_b2 = static_cast<float>(1 - b2);
          const double lr_t = static_cast<float>(lr / (1 - std::pow(b1, t)));
          const double inv_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(b2, t)));
          const double wd = static_cast<float>(variant.weight_decay), eps_f = static_cast<float>(eps);
          const double decay = variant.adamw ? static_cast<float>(1 - lr * variant.weight_decay) : 1.0;
          for (size_t k = 0; k < static_cast<size_t>(n); ++k) {
            CAPTURE(k);
            const double m0 = t == 1 ? 0 : before["exp_avg"][k], v0 = t == 1 ? 0 : before["exp_avg_sq"][k];
            const double decay_term = variant.adamw ? 0 : wd * w[k];
            const double d = g[k] + decay_term;
            const double d_scale = std::abs(g[k]) + std::abs(decay_term);  // float32 d is within eps32 · this
            // moments: a few ulp of the terms that make them
            const double m_ref = m0 + one_b1 * (d - m0), v_ref = b2f * v0 + one_b2 * d * d;
            const double m = after["exp_avg"][k], v = after["exp_avg_sq"][k];
            CHECK(std::abs(m - m_ref) <= 4 * eps32 * (std::abs(m0) + one_b1 * d_scale + std::abs(m_ref)) + 1e-38);
            CHECK(std::abs(v - v_ref) <=
                  4 * eps32 * (b2f * v0 + one_b2 * std::abs(d) * (std::abs(d) + d_scale)) + 1e-38);
            double vhat = v;
            if (variant.amsgrad) {
              vhat = after["max_exp_avg_sq"][k];
              CHECK(vhat == std::max(t == 1 ? 0.0 : before["max_exp_avg_sq"][k], v));
            }
            // the weight, from the kernel's own m and v̂: the division is where the kernel approximates
            const double update = lr_t * m / (std::sqrt(vhat) * inv_bc2 + eps_f);
            const double w_ref = w[k] * decay - update;
            const double err = std::abs(w_new[k] - w_ref);
            CHECK(err <= 2 * eps32 * std::abs(w[k] * decay) + 8 * eps32 * std::abs(update) + 1e-38);
            // beyond the roundings of w · decay and of the result, relative to the update
            if (std::abs(update) > 1e-2 * std::abs(w_ref))
              worst_update =
                  std::max(worst_update, std::max(0.0, err - 2 * eps32 * std::abs(w_ref)) / std::abs(update));
            if (k == 0 && !variant.adamw && variant.weight_decay == 0) CHECK(w_new[k] == w[k]);
          }
        }
        // A reciprocal estimate without its Newton step is off by up to 2^-14 ≈ 6e-5: this would fail.
        CHECK(worst_update < 1e-6);
      }
    }
  });
}

TEST_CASE("Adam's float32 kernel stays finite where exact division does: huge gradients, eps = 0") {
  for_each_adam_path([] {
    // At step 1, m̂ = g and v̂ = g², so the step is lr·sign(g) for any finite g whose square fits.
    for (double g : {1e20, -1e20, 3.0, -0.5}) {
      for (double eps : {1e-8, 0.0}) {
        CAPTURE(g);
        CAPTURE(eps);
        Tensor p = full({20}, 1.0).requires_grad_();  // 16 lanes and a masked tail of 4
        optim::Adam opt({p}, optim::AdamOptions(1e-3).eps(eps));
        p.set_grad(full({20}, g));
        opt.step();
        for (double w : p.to_vector()) CHECK(w == doctest::Approx(1.0 - 1e-3 * (g > 0 ? 1 : -1)).epsilon(1e-6));
      }
    }
    // g² overflows float: v = inf, so the step is m/inf = 0 (the Newton step alone would give NaN)
    Tensor p = full({20}, 1.0).requires_grad_();
    optim::Adam opt({p}, optim::AdamOptions(1e-3));
    p.set_grad(full({20}, 1e30));
    opt.step();
    for (double w : p.to_vector()) CHECK(w == 1.0);
  });
}

TEST_CASE("kernel paths: the CPU's widest is detected, a narrower one can be forced, a wider one cannot") {
  CHECK(isa_supported(Isa::portable));
  CHECK(isa_supported(cpu_isa()));
  {
    IsaScope scope(Isa::portable);
    CHECK(kernel_isa() == Isa::portable);
  }
  if (cpu_isa() != Isa::avx512)
    CHECK_THROWS_WITH_AS(set_kernel_isa(Isa::avx512), doctest::Contains("cannot run the avx512 path"),
                         std::invalid_argument);
  MESSAGE("this CPU runs tapegrad's " << std::string(isa_name(cpu_isa())) << " kernels");
}
