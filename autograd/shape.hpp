#pragma once
/// \file shape.hpp
/// Shape: a small vector of dimension sizes (int64), stored inline up to rank 6 so that creating
/// a tensor of ordinary rank costs no heap allocation for its shape. Any rank is supported.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

namespace tapegrad {

class Shape;
/// Throws ShapeError "tapegrad::<op>: shape <s> has more elements than int64 can count" (numel's error).
[[noreturn, gnu::cold, gnu::noinline]] void throw_too_large(const char* op, const Shape& s);

/// The dimension sizes of a tensor, outermost first (`Shape{2, 3}`: 2 rows of 3); `{}` is 0-d.
/// Behaves like a small std::vector<int64_t>.
class Shape {
 public:
  /// Ranks up to this are stored inline (no allocation).
  static constexpr size_t kInline = 6;

  Shape() = default;
  ///@{
  /// From a list, an iterator range or a vector of dimension sizes.
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  template <class It, class = decltype(*std::declval<It>())>
  Shape(It first, It last) { assign(first, last); }
  explicit Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }
  ///@}
  ///@{
  /// Copies and moves (a moved-from Shape is 0-d).
  Shape(const Shape& o) { assign(o.begin(), o.end()); }
  Shape& operator=(const Shape& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  Shape(Shape&& o) noexcept { *this = std::move(o); }
  Shape& operator=(Shape&& o) noexcept {
    if (this == &o) return *this;
    n_ = o.n_;
    if (o.heap_.empty()) {
      std::memcpy(inline_, o.inline_, sizeof(inline_));
      heap_.clear();
    } else {
      heap_ = std::move(o.heap_);
    }
    o.n_ = 0;
    o.heap_.clear();
    return *this;
  }
  ///@}

  ///@{
  /// std::vector-like access: size() is the rank; operator[] and back() are unchecked.
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const int64_t* data() const { return heap_.empty() ? inline_ : heap_.data(); }
  int64_t* data() { return heap_.empty() ? inline_ : heap_.data(); }
  const int64_t* begin() const { return data(); }
  const int64_t* end() const { return data() + n_; }
  int64_t* begin() { return data(); }
  int64_t* end() { return data() + n_; }
  int64_t operator[](size_t i) const { return data()[i]; }
  int64_t& operator[](size_t i) { return data()[i]; }
  int64_t back() const { return data()[n_ - 1]; }
  ///@}

  /// Appends a dimension.
  void push_back(int64_t v) {
    std::vector<int64_t> tmp(begin(), end());
    tmp.push_back(v);
    assign(tmp.begin(), tmp.end());
  }
  /// Inserts `v` before position `pos`.
  void insert(size_t pos, int64_t v) {
    std::vector<int64_t> tmp(begin(), end());
    tmp.insert(tmp.begin() + static_cast<std::ptrdiff_t>(pos), v);
    assign(tmp.begin(), tmp.end());
  }
  /// Removes the dimension at `pos`.
  void erase(size_t pos) {
    std::vector<int64_t> tmp(begin(), end());
    tmp.erase(tmp.begin() + static_cast<std::ptrdiff_t>(pos));
    assign(tmp.begin(), tmp.end());
  }

  /// Product of the dimensions (1 for a 0-d shape). Throws ShapeError naming `op` and the shape
  /// when the product of the non-zero dimensions does not fit in int64, so that every partial
  /// product a kernel forms from a valid shape (strides, rows, inner sizes) fits too.
  int64_t numel(const char* op = "Shape::numel") const {
    int64_t n = 1;
    bool zero = false;
    for (auto d : *this) {
      if (d == 0) zero = true;
      else if (__builtin_mul_overflow(n, d, &n)) [[unlikely]] throw_too_large(op, *this);
    }
    return zero ? 0 : n;
  }
  /// The sizes as a std::vector.
  std::vector<int64_t> vec() const { return {begin(), end()}; }

  ///@{
  /// Same rank and the same size in every dimension.
  friend bool operator==(const Shape& a, const Shape& b) {
    return a.n_ == b.n_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  ///@}

 private:
  template <class It>
  void assign(It first, It last) {
    size_t n = static_cast<size_t>(std::distance(first, last));
    n_ = static_cast<uint32_t>(n);
    if (n <= kInline) {
      heap_.clear();
      int64_t* p = inline_;
      for (; first != last; ++first) *p++ = static_cast<int64_t>(*first);
    } else {
      heap_.assign(first, last);
    }
  }

  int64_t inline_[kInline] = {0, 0, 0, 0, 0, 0};
  std::vector<int64_t> heap_;
  uint32_t n_ = 0;
};

/// "[2, 3]" — used in every error message.
std::string to_string(const Shape& s);

}  // namespace tapegrad
