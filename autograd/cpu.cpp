#include "autograd/cpu.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

// This file runs before any other library code (the start-up check at the end), so it is compiled
// without the arch flags (TapegradDeps.cmake adds -mno-avx and friends for it alone): whatever the
// CPU, the check itself cannot fault.
#if defined(__x86_64__) && (defined(__AVX__) || defined(__BMI__) || defined(__POPCNT__))
#error "autograd/cpu.cpp must be compiled without AVX/BMI/POPCNT (see tapegrad_library in cmake/TapegradDeps.cmake)"
#endif
#ifndef TAPEGRAD_ARCH_FLAGS_TEXT
#define TAPEGRAD_ARCH_FLAGS_TEXT "?"
#endif

namespace tapegrad {
namespace detail {
/// The baseline's CpuFeature bits, a constant defined in simd.cpp (compiled with the arch flags):
/// reading it runs no code of that file.
extern const uint32_t baseline_feature_bits;
}  // namespace detail

namespace {

struct FeatureName {
  CpuFeature bit;
  const char* name;
};
constexpr FeatureName kFeatureNames[] = {
    {cpu_sse3, "SSE3"},         {cpu_ssse3, "SSSE3"},       {cpu_sse4_1, "SSE4.1"},     {cpu_sse4_2, "SSE4.2"},
    {cpu_popcnt, "POPCNT"},     {cpu_avx, "AVX"},           {cpu_avx2, "AVX2"},         {cpu_fma, "FMA"},
    {cpu_f16c, "F16C"},         {cpu_bmi, "BMI1"},          {cpu_bmi2, "BMI2"},         {cpu_avx512f, "AVX-512F"},
    {cpu_avx512dq, "AVX-512DQ"}, {cpu_avx512bw, "AVX-512BW"}, {cpu_avx512vl, "AVX-512VL"}, {cpu_avx512cd, "AVX-512CD"},
};

/// "AVX2", "AVX2 and FMA", "SSE3, AVX2 and FMA".
std::string feature_list(uint32_t bits) {
  std::string out;
  int left = __builtin_popcount(bits);  // a builtin, not the POPCNT instruction, under these flags
  for (const FeatureName& f : kFeatureNames) {
    if (!(bits & f.bit)) continue;
    out += f.name;
    --left;
    out += left > 1 ? ", " : left == 1 ? " and " : "";
  }
  return out;
}

Isa detect() {
  __builtin_cpu_init();
  // AVX-512 F and DQ: xsimd 8.1's avx512f kernels use DQ instructions (its hadd); every AVX-512 CPU but
  // Xeon Phi has both.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::portable;
}

Isa from_environment(Isa cpu) {
  const char* env = std::getenv("TAPEGRAD_ISA");
  if (!env || !*env) return cpu;
  const std::string v = env;
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512})
    if (v == isa_name(isa)) return isa < cpu ? isa : cpu;
  throw std::invalid_argument("tapegrad: TAPEGRAD_ISA='" + v + "' is not one of portable, avx2, avx512");
}

std::atomic<Isa>& limit() {
  static std::atomic<Isa> value{from_environment(cpu_isa())};
  return value;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

bool isa_supported(Isa isa) { return isa <= cpu_isa(); }

Isa kernel_isa() { return limit().load(std::memory_order_relaxed); }

uint32_t baseline_features() { return detail::baseline_feature_bits; }

uint32_t cpu_features() {
  __builtin_cpu_init();
  uint32_t bits = 0;
  auto has = [&](bool yes, CpuFeature f) { bits |= yes ? f : 0u; };
  has(__builtin_cpu_supports("sse3"), cpu_sse3);
  has(__builtin_cpu_supports("ssse3"), cpu_ssse3);
  has(__builtin_cpu_supports("sse4.1"), cpu_sse4_1);
  has(__builtin_cpu_supports("sse4.2"), cpu_sse4_2);
  has(__builtin_cpu_supports("popcnt"), cpu_popcnt);
  has(__builtin_cpu_supports("avx"), cpu_avx);
  has(__builtin_cpu_supports("avx2"), cpu_avx2);
  has(__builtin_cpu_supports("fma"), cpu_fma);
  has(__builtin_cpu_supports("f16c"), cpu_f16c);
  has(__builtin_cpu_supports("bmi"), cpu_bmi);
  has(__builtin_cpu_supports("bmi2"), cpu_bmi2);
  has(__builtin_cpu_supports("avx512f"), cpu_avx512f);
  has(__builtin_cpu_supports("avx512dq"), cpu_avx512dq);
  has(__builtin_cpu_supports("avx512bw"), cpu_avx512bw);
  has(__builtin_cpu_supports("avx512vl"), cpu_avx512vl);
  has(__builtin_cpu_supports("avx512cd"), cpu_avx512cd);
  return bits;
}

const char* baseline_flags() { return TAPEGRAD_ARCH_FLAGS_TEXT; }

std::string baseline_problem(uint32_t built, uint32_t cpu) {
  const uint32_t missing = built & ~cpu;
  if (!missing) return "";
  return "tapegrad was built for x86-64 with " + feature_list(built) + " (TAPEGRAD_ARCH_FLAGS = " + baseline_flags() +
         "); this CPU lacks " + feature_list(missing) +
         ". Rebuild tapegrad with TAPEGRAD_ARCH_FLAGS this CPU supports (\"\" builds for any x86-64; the "
         "hand-vectorised kernels still pick AVX2 or AVX-512 at run time).";
}

Isa set_kernel_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("tapegrad::set_kernel_isa: this CPU cannot run the ") + isa_name(isa) +
                                " path (it supports up to " + isa_name(cpu_isa()) + ")");
  return limit().exchange(isa);
}

}  // namespace tapegrad

// The start-up check: a constructor of priority 101 runs before every C++ static initialiser of the
// program (default priority) and before main, so before any code built with the arch flags. Static
// builds keep this object in every program through the link option --undefined=<this function>
// (tapegrad_library); a shared library runs it when loaded.
extern "C" __attribute__((constructor(101))) void tapegrad_check_cpu_baseline() {
  const std::string problem = tapegrad::baseline_problem(tapegrad::baseline_features(), tapegrad::cpu_features());
  if (problem.empty()) return;
  std::fputs(problem.c_str(), stderr);
  std::fputs("\n", stderr);
  std::abort();
}
