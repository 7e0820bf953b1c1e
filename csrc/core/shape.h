// Shape: the sizes (or the byte strides) of an array's dimensions, as the meta functions and the
// bindings pass them around on every call. The first kInline dims live inside the object, so a
// shape of up to kInline dims (every array of every op's usual use: the ops that fix a rank take
// at most 4 dims) costs no heap allocation to make, copy or compare; a longer one (NumPy allows
// 64 dims, and the elementwise ops, softmax, layer norm, embedding and gemm's batch take any
// rank) moves to the heap and works the same, only slower.
//
// It reads like the std::vector<int64_t> it replaces: Shape{B, H}, s[i], s.size(), s.back(),
// begin()/end(), push_back, assign, ==.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <vector>

namespace fastnn {

class Shape {
 public:
  static constexpr size_t kInline = 8;
  using value_type = int64_t;
  using size_type = size_t;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  Shape(size_t n, int64_t value) { assign(n, value); }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  Shape(It first, It last) {
    assign(first, last);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t* data() { return size_ <= kInline ? inline_ : heap_.data(); }
  const int64_t* data() const { return size_ <= kInline ? inline_ : heap_.data(); }
  int64_t* begin() { return data(); }
  int64_t* end() { return data() + size_; }
  const int64_t* begin() const { return data(); }
  const int64_t* end() const { return data() + size_; }
  int64_t& operator[](size_t i) { return data()[i]; }
  int64_t operator[](size_t i) const { return data()[i]; }
  int64_t& back() { return data()[size_ - 1]; }
  int64_t back() const { return data()[size_ - 1]; }

  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  void assign(It first, It last) {
    const size_t n = static_cast<size_t>(std::distance(first, last));
    if (n <= kInline) {
      int64_t tmp[kInline];  // first..last may lie in this shape
      std::copy(first, last, tmp);
      std::copy(tmp, tmp + n, inline_);
      heap_.clear();
    } else {
      std::vector<int64_t> v(first, last);
      heap_.swap(v);
    }
    size_ = n;
  }
  void assign(size_t n, int64_t value) {
    if (n <= kInline) {
      std::fill(inline_, inline_ + n, value);
      heap_.clear();
    } else {
      heap_.assign(n, value);
    }
    size_ = n;
  }
  void push_back(int64_t d) {
    if (size_ < kInline) {
      inline_[size_] = d;
    } else {
      if (size_ == kInline) heap_.assign(inline_, inline_ + kInline);
      heap_.push_back(d);
    }
    ++size_;
  }

  // dims inserted before pos, as std::vector::insert.
  void insert(const int64_t* pos, std::initializer_list<int64_t> dims) {
    const int64_t* first = data();
    Shape r(first, pos);
    for (int64_t d : dims) r.push_back(d);
    for (const int64_t* p = pos; p != end(); ++p) r.push_back(*p);
    *this = r;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  size_t size_ = 0;
  int64_t inline_[kInline] = {};  // the dims while size_ <= kInline
  std::vector<int64_t> heap_;     // the dims beyond that (empty otherwise: no allocation)
};

}  // namespace fastnn
