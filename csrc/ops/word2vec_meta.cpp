// word2vec's rules: the meta functions and value checks of csrc/ops/word2vec.h.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "ops/word2vec.h"

namespace fastnn {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// a is present (else `missing` says why it is needed: a ValueError), of dtype `dtype` (TypeError)
// and C-contiguous.
void check_array(const char* op, const ArrayRef& a, const char* dtype) {
  if (std::strcmp(a.dtype_name, dtype) != 0)
    arg_type_fail(op, std::string("expected ") + a.name + " to be " + dtype + ", got " + a.dtype_name);
  if (!a.contiguous) {
    arg_value_fail(op, std::string("expected ") + a.name +
                           " to be C-contiguous, got a strided array of shape " + shape_str(a.shape));
  }
}

void required(const char* op, const ArrayRef& a, const char* dtype, const char* why) {
  if (!a.present) {
    arg_value_fail(
        op, std::string("expected ") + a.name + " (a numpy.ndarray of " + dtype + ")" + why + ", got None");
  }
}

void check_shape(const char* op, const ArrayRef& a, const Shape& want, const char* what) {
  if (a.shape != want) {
    arg_value_fail(op, std::string("expected ") + a.name + " of shape " + shape_str(want) + " " + what +
                           ", got " + shape_str(a.shape));
  }
}

void check_weight(const char* op, const ArrayRef& a) {
  check_array(op, a, "float32");
  if (a.ndim() != 2)
    arg_value_fail(op,
                   std::string("expected ") + a.name + " of 2 dimensions, got shape " + shape_str(a.shape));
  if (!a.writeable)
    arg_value_fail(op, std::string("expected ") + a.name + " to be writeable, got a read-only array");
}

}  // namespace

Word2VecArgs word2vec_meta(const char* op, const ArrayRef& syn0, const ArrayRef& syn1neg,
                           const ArrayRef& syn1, const ArrayRef& sample_int, const ArrayRef& cum_table,
                           const ArrayRef& points, const ArrayRef& codes, const ArrayRef& code_lengths,
                           const Word2VecOptions& o, std::initializer_list<const ArrayRef*> others) {
  if (!syn0.present) arg_type_fail(op, "expected syn0 to be a numpy.ndarray of float32, got NoneType");
  check_weight(op, syn0);
  Word2VecArgs a;
  a.v = syn0.shape[0];
  a.d = syn0.shape[1];
  constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();
  if (a.d < 1 || a.d > kMax32)
    arg_value_fail(op, "expected syn0 of shape (V, D) with 1 <= D < 2^31, got " + shape_str(syn0.shape));
  if (a.v > kMax32)
    arg_value_fail(op,
                   "expected syn0 of shape (V, D) with V < 2^31 (int32 words), got " + shape_str(syn0.shape));
  // Options.
  if (o.negative < 0 || o.negative > kW2vMaxNegative)
    arg_value_fail(op, "expected negative in [0, " + str(kW2vMaxNegative) + "], got " + str(o.negative));
  if (o.window < 1 || o.window > kW2vMaxWindow)
    arg_value_fail(op, "expected window in [1, 2^31 - 1], got " + str(o.window));
  if (!std::isfinite(o.alpha)) arg_value_fail(op, "expected a finite alpha, got " + std::to_string(o.alpha));
  if (!std::isfinite(o.min_alpha))
    arg_value_fail(op, "expected a finite min_alpha, got " + std::to_string(o.min_alpha));
  if (!(o.p0 >= 0.0 && o.p0 <= o.p1 && o.p1 <= 1.0)) {
    arg_value_fail(op, "expected progress (p0, p1) with 0 <= p0 <= p1 <= 1, got (" + std::to_string(o.p0) +
                           ", " + std::to_string(o.p1) + ")");
  }
  const int given = points.present + codes.present + code_lengths.present;
  if (given != 0 && given != 3) {
    arg_value_fail(op,
                   std::string("expected points, codes and code_lengths together (hierarchical softmax) or "
                               "none of them, got ") +
                       (points.present ? "points " : "") + (codes.present ? "codes " : "") +
                       (code_lengths.present ? "code_lengths " : "") + "alone");
  }
  a.hs = given == 3;
  if (!a.hs && o.negative == 0) {
    arg_value_fail(op,
                   "expected negative > 0 or hierarchical softmax (points, codes, code_lengths), got "
                   "negative = 0 without them: nothing to train");
  }
  a.sg = o.sg, a.shrink = o.shrink_windows, a.cbow_mean = o.cbow_mean, a.compute_loss = o.compute_loss;
  a.negative = o.negative, a.window = o.window;
  a.alpha = o.alpha, a.min_alpha = o.min_alpha, a.p0 = o.p0, a.p1 = o.p1, a.seed = o.seed;
  const Shape vd{a.v, a.d}, v1{a.v};
  // Negative sampling.
  if (o.negative > 0) {
    required(op, syn1neg, "float32", " when negative > 0");
    required(op, cum_table, "uint32", " when negative > 0");
  }
  if (syn1neg.present) {
    check_weight(op, syn1neg);
    check_shape(op, syn1neg, vd, "(syn0's)");
  }
  if (cum_table.present) {
    check_array(op, cum_table, "uint32");
    check_shape(op, cum_table, v1, "(V,)");
  }
  if (sample_int.present) {
    check_array(op, sample_int, "uint32");
    check_shape(op, sample_int, v1, "(V,)");
  }
  // Hierarchical softmax.
  if (a.hs) required(op, syn1, "float32", " with hierarchical softmax");
  if (syn1.present) {
    check_weight(op, syn1);
    if (syn1.shape[1] != a.d || syn1.shape[0] < a.v - 1) {
      arg_value_fail(op, "expected syn1 of shape (R, " + str(a.d) + ") with R >= V - 1 = " + str(a.v - 1) +
                             ", got " + shape_str(syn1.shape));
    }
    a.r = syn1.shape[0];
  }
  if (a.hs) {
    check_array(op, points, "int32");
    check_array(op, codes, "uint8");
    check_array(op, code_lengths, "int32");
    if (points.ndim() != 2 || points.shape[0] != a.v)
      arg_value_fail(
          op, "expected points of shape (V, L) = (" + str(a.v) + ", L), got " + shape_str(points.shape));
    a.l = points.shape[1];
    check_shape(op, codes, points.shape, "(points')");
    check_shape(op, code_lengths, v1, "(V,)");
  }
  // No weight may share memory with another argument.
  const ArrayRef* weights[] = {&syn0, &syn1neg, &syn1};
  for (const ArrayRef* w : weights) {
    if (!w->present) continue;
    for (const ArrayRef* x :
         {&syn0, &syn1neg, &syn1, &sample_int, &cum_table, &points, &codes, &code_lengths}) {
      if (x != w && overlaps(*w, *x)) {
        arg_value_fail(op, std::string("expected ") + w->name + " not to share memory with " + x->name +
                               ", got overlapping arrays");
      }
    }
    for (const ArrayRef* x : others) {
      if (overlaps(*w, *x)) {
        arg_value_fail(op, std::string("expected ") + w->name + " not to share memory with " + x->name +
                               ", got overlapping arrays");
      }
    }
  }
  a.syn0 = syn0.ptr<float>();
  if (o.negative > 0) {
    a.syn1neg = syn1neg.ptr<float>();
    a.cum_table = cum_table.ptr<const uint32_t>();
  }
  if (a.hs) {
    a.syn1 = syn1.ptr<float>();
    a.points = points.ptr<const int32_t>();
    a.codes = codes.ptr<const uint8_t>();
    a.code_lengths = code_lengths.ptr<const int32_t>();
  }
  if (sample_int.present) a.sample_int = sample_int.ptr<const uint32_t>();
  return a;
}

void word2vec_corpus_meta(const char* op, const ArrayRef& words, const ArrayRef& sentence_ends) {
  if (!words.present) arg_type_fail(op, "expected words to be a numpy.ndarray of int32, got NoneType");
  if (!sentence_ends.present)
    arg_type_fail(op, "expected sentence_ends to be a numpy.ndarray of int64, got NoneType");
  check_array(op, words, "int32");
  check_array(op, sentence_ends, "int64");
  if (words.ndim() != 1)
    arg_value_fail(op, "expected words of 1 dimension, got shape " + shape_str(words.shape));
  if (sentence_ends.ndim() != 1)
    arg_value_fail(op, "expected sentence_ends of 1 dimension, got shape " + shape_str(sentence_ends.shape));
}

void word2vec_check_tables(const char* op, const Word2VecArgs& a) {
  if (a.cum_table) {
    const uint32_t* c = a.cum_table;
    for (int64_t i = 1; i < a.v; ++i) {
      if (c[i] < c[i - 1]) {
        arg_value_fail(op, "expected cum_table non-decreasing, got cum_table[" + str(i) + "] = " + str(c[i]) +
                               " < cum_table[" + str(i - 1) + "] = " + str(c[i - 1]));
      }
    }
    if (a.v == 0 || c[a.v - 1] == 0) {
      arg_value_fail(op, "expected cum_table with a last entry > 0, got " +
                             (a.v ? "cum_table[" + str(a.v - 1) + "] = 0" : std::string("an empty table")));
    }
  }
  if (a.hs) {
    for (int64_t w = 0; w < a.v; ++w) {
      const int64_t len = a.code_lengths[w];
      if (len < 0 || len > a.l) {
        arg_value_fail(op, "expected code_lengths in [0, L] = [0, " + str(a.l) + "], got " + str(len) +
                               " at position " + str(w));
      }
      for (int64_t k = 0; k < len; ++k) {
        const int64_t p = a.points[w * a.l + k];
        if (p < 0 || p >= a.r) {
          arg_value_fail(op, "expected points in [0, " + str(a.r) + ") (the rows of syn1), got " + str(p) +
                                 " at points[" + str(w) + ", " + str(k) + "]");
        }
        if (a.codes[w * a.l + k] > 1) {
          arg_value_fail(op, "expected codes of 0 or 1, got " + str(a.codes[w * a.l + k]) + " at codes[" +
                                 str(w) + ", " + str(k) + "]");
        }
      }
    }
  }
}

void word2vec_check_corpus(const char* op, const Word2VecArgs& a, const int32_t* words, int64_t n,
                           const int64_t* ends, int64_t s) {
  for (int64_t i = 0; i < n; ++i) {
    if (words[i] < 0 || words[i] >= a.v) {
      arg_value_fail(op, "expected words in [0, " + str(a.v) + ") (the rows of syn0), got " + str(words[i]) +
                             " at position " + str(i));
    }
  }
  if (s == 0) {
    if (n != 0)
      arg_value_fail(op,
                     "expected sentence_ends to end with N = " + str(n) + " (the words), got an empty array");
    return;
  }
  for (int64_t i = 0; i < s; ++i) {
    const int64_t prev = i ? ends[i - 1] : 0;
    if (ends[i] < prev) {
      arg_value_fail(op, "expected sentence_ends non-decreasing from 0, got " + str(ends[i]) +
                             " at position " + str(i) + (i ? " after " + str(prev) : std::string()));
    }
  }
  if (ends[s - 1] != n) {
    arg_value_fail(op, "expected sentence_ends to end with N = " + str(n) + " (the words), got " +
                           str(ends[s - 1]) + " at position " + str(s - 1));
  }
}

}  // namespace fastnn
