#pragma once
// The message of the exception an expression throws, for tests that check what an error says.
#include <doctest/doctest.h>

#include <string>

namespace tapegrad::testing {

/// What `f()` throws as an E; fails the test (and returns "") when it throws nothing.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception thrown");
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace tapegrad::testing
