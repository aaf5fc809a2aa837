#pragma once
/// \file env_setting.hpp
/// The mechanism behind tapegrad's process-wide algorithm switches that an environment variable
/// can set (TAPEGRAD_GEMM in gemm_backend.cpp, TAPEGRAD_CONV in nn/conv_winograd.cpp): an enum's
/// names and their parsing, and a setting read from the variable on first use unless set before.
/// Internal: the public functions of those files wrap it.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tapegrad::detail {

/// A choice among the N named values of enum E, process-wide, whose first value comes from an
/// environment variable. Constant-initialised (no start-up work); thread-safe.
template <class E, std::size_t N>
class EnvSetting {
 public:
  /// What the messages name: the variable ("TAPEGRAD_GEMM"), the setting ("GEMM backend"), the
  /// public name function ("gemm_backend_name"), the enum ("GemmBackend"), and each value's name.
  struct Spec {
    const char* variable;                            ///< the environment variable
    const char* noun;                                ///< the setting, in parse errors
    const char* name_function;                       ///< the public name function, in name errors
    const char* type;                                ///< the enum's name, in name errors
    std::array<std::pair<E, const char*>, N> names;  ///< every value and its name
  };

  /// A setting not yet read from the environment.
  constexpr explicit EnvSetting(const Spec& spec) : spec_(spec) {}

  /// The value's name; std::invalid_argument for a value outside the enum.
  std::string name(E value) const {
    for (const auto& [v, n] : spec_.names)
      if (v == value) return n;
    throw std::invalid_argument(std::string(spec_.name_function) + ": not a " + spec_.type +
                                " value: " + std::to_string(static_cast<int>(value)));
  }

  /// The value named `text`; std::invalid_argument listing the accepted names otherwise.
  E parse(std::string_view text) const {
    std::string accepted;
    for (const auto& [v, n] : spec_.names) {
      if (text == n) return v;
      accepted += (accepted.empty() ? "" : ", ") + std::string(n);
    }
    throw std::invalid_argument(std::string(spec_.noun) + " must be one of " + accepted + "; got '" +
                                std::string(text) + "'");
  }

  /// Sets the value for every later get() (a value outside the enum throws, nothing changes).
  void set(E value) {
    name(value);
    value_.store(static_cast<int>(value), std::memory_order_relaxed);
  }

  /// The last set() value; before any, the variable's value (unset or empty: `fallback`), read on
  /// the first call and handed to `check`, which may throw. A bad value throws
  /// std::invalid_argument naming the variable and stays unread, so every call reports it until it
  /// is fixed or set() overrides it.
  template <class Check>
  E get(E fallback, Check&& check) {
    int value = value_.load(std::memory_order_relaxed);
    if (value < 0) {
      const int from_environment = static_cast<int>(read_environment(fallback, check));
      int expected = -1;
      value_.compare_exchange_strong(expected, from_environment, std::memory_order_relaxed);
      value = value_.load(std::memory_order_relaxed);
    }
    return static_cast<E>(value);
  }

 private:
  template <class Check>
  E read_environment(E fallback, Check& check) const {
    const char* text = std::getenv(spec_.variable);
    if (text == nullptr || *text == '\0') return fallback;
    E value;
    try {
      value = parse(text);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(spec_.variable) + ": " + e.what());
    }
    check(value);
    return value;
  }

  Spec spec_;
  std::atomic<int> value_{-1};  // -1: not read from the environment yet, else an E value
};

}  // namespace tapegrad::detail
