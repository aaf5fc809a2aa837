#include "autograd/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tapegrad {
namespace {

Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
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

Isa set_kernel_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("tapegrad::set_kernel_isa: this CPU cannot run the ") + isa_name(isa) +
                                " path (it supports up to " + isa_name(cpu_isa()) + ")");
  return limit().exchange(isa);
}

}  // namespace tapegrad
