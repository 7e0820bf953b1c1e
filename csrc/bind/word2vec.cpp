// Binding of word2vec_train / word2vec_train_file / word2vec_count_file: the options, the meta
// function and the value checks (csrc/ops/word2vec_meta.cpp), the file's existence and size,
// the vocabulary's bytes, all with the GIL held; then the training without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/threads.h"
#include "ops/word2vec.h"

namespace fastnn::bind {
namespace {

int64_t int_arg(const char* op, const char* name, py::handle obj) {
  if (!is_int(obj))
    arg_type_fail(op, std::string("expected ") + name + " to be an int, got " + type_name(obj));
  return int64_value(op, name, obj);
}

double real_arg(const char* op, const char* name, py::handle obj) {
  const bool ok = (py::isinstance<py::float_>(obj) || is_int(obj) ||
                   py::isinstance(obj, py::module_::import("numpy").attr("floating"))) &&
                  !py::isinstance<py::bool_>(obj);
  if (!ok) arg_type_fail(op, std::string("expected ") + name + " to be a float, got " + type_name(obj));
  return py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
}

uint64_t seed_arg(const char* op, py::handle obj) {
  if (!is_int(obj)) arg_type_fail(op, "expected seed to be an int, got " + type_name(obj));
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!i) {  // an __index__ that refuses (a NumPy array of several ints)
    if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
    PyErr_Clear();
    arg_type_fail(op, "expected seed to be an int, got " + type_name(obj));
  }
  const unsigned long long v = PyLong_AsUnsignedLongLongMask(i.ptr());  // mod 2^64
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<uint64_t>(v);
}

int threads_arg(const char* op, py::handle obj) {
  if (obj.is_none()) return get_num_threads();
  const int64_t n = int_arg(op, "num_threads", obj);
  if (n < 1) arg_value_fail(op, "expected num_threads >= 1 or None, got " + std::to_string(n));
  return static_cast<int>(std::min<int64_t>(n, 1024));
}

Word2VecOptions options(const char* op, py::handle sg, py::handle negative, py::handle window,
                        py::handle shrink_windows, py::handle cbow_mean, py::handle alpha,
                        py::handle min_alpha, py::handle progress, py::handle seed, py::handle compute_loss) {
  Word2VecOptions o;
  o.sg = bool_arg(op, "sg", sg);
  o.negative = int_arg(op, "negative", negative);
  o.window = int_arg(op, "window", window);
  o.shrink_windows = bool_arg(op, "shrink_windows", shrink_windows);
  o.cbow_mean = bool_arg(op, "cbow_mean", cbow_mean);
  o.alpha = real_arg(op, "alpha", alpha);
  o.min_alpha = real_arg(op, "min_alpha", min_alpha);
  if (!(py::isinstance<py::tuple>(progress) || py::isinstance<py::list>(progress)) ||
      py::len(progress) != 2) {
    arg_type_fail(op, "expected progress to be a pair of floats (p0, p1), got " + type_name(progress));
  }
  const py::sequence p = py::reinterpret_borrow<py::sequence>(progress);
  o.p0 = real_arg(op, "progress[0]", p[0]);
  o.p1 = real_arg(op, "progress[1]", p[1]);
  o.seed = seed_arg(op, seed);
  o.compute_loss = bool_arg(op, "compute_loss", compute_loss);
  return o;
}

// The weights and tables of a training entry.
struct Tables {
  NpArg syn0, syn1neg, syn1, sample_int, cum_table, points, codes, code_lengths;
  Tables(const char* op, py::handle syn0_o, py::handle syn1neg_o, py::handle syn1_o, py::handle sample_int_o,
         py::handle cum_table_o, py::handle points_o, py::handle codes_o, py::handle code_lengths_o)
      : syn0(op, "syn0", syn0_o),
        syn1neg(op, "syn1neg", syn1neg_o),
        syn1(op, "syn1", syn1_o),
        sample_int(op, "sample_int", sample_int_o, "uint32"),
        cum_table(op, "cum_table", cum_table_o, "uint32"),
        points(op, "points", points_o, "int32"),
        codes(op, "codes", codes_o, "uint8"),
        code_lengths(op, "code_lengths", code_lengths_o, "int32") {}
  Word2VecArgs meta(const char* op, const Word2VecOptions& o,
                    std::initializer_list<const ArrayRef*> others) const {
    Word2VecArgs a = word2vec_meta(op, syn0.ref, syn1neg.ref, syn1.ref, sample_int.ref, cum_table.ref,
                                   points.ref, codes.ref, code_lengths.ref, o, others);
    word2vec_check_tables(op, a);
    return a;
  }
};

py::tuple result(const Word2VecResult& r) { return py::make_tuple(r.raw_words, r.effective_words, r.loss); }

py::tuple train(py::handle syn0, py::handle words_o, py::handle ends_o, py::handle syn1neg, py::handle syn1,
                py::handle sample_int, py::handle cum_table, py::handle points, py::handle codes,
                py::handle code_lengths, py::handle sg, py::handle negative, py::handle window,
                py::handle shrink_windows, py::handle cbow_mean, py::handle alpha, py::handle min_alpha,
                py::handle progress, py::handle seed, py::handle compute_loss, py::handle num_threads,
                py::handle isa_o) {
  const char* op = "word2vec_train";
  const Isa isa = isa_arg(op, isa_o);
  const Tables t(op, syn0, syn1neg, syn1, sample_int, cum_table, points, codes, code_lengths);
  const NpArg words(op, "words", words_o, "int32"), ends(op, "sentence_ends", ends_o, "int64");
  const Word2VecOptions o = options(op, sg, negative, window, shrink_windows, cbow_mean, alpha, min_alpha,
                                    progress, seed, compute_loss);
  word2vec_corpus_meta(op, words.ref, ends.ref);
  const Word2VecArgs a = t.meta(op, o, {&words.ref, &ends.ref});
  const int32_t* wp = words.ref.ptr<const int32_t>();
  const int64_t* ep = ends.ref.ptr<const int64_t>();
  const int64_t n = words.ref.numel(), s = ends.ref.numel();
  word2vec_check_corpus(op, a, wp, n, ep, s);
  const int nt = threads_arg(op, num_threads);
  return result(run_kernel(op, [&] { return word2vec_train(a, wp, n, ep, s, isa, nt); }));
}

// The file at path_obj (a str, bytes or os.PathLike): its name as bytes for the C++ I/O and its
// size; a missing, unreadable or non-regular file is the OSError Python's own calls raise.
std::pair<std::string, int64_t> file_arg(const char* op, py::handle path_obj, py::object* fspath) {
  const py::module_ os = py::module_::import("os");
  try {
    *fspath = os.attr("fspath")(path_obj);
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    arg_type_fail(op, "expected path to be a str, bytes or os.PathLike, got " + type_name(path_obj));
  }
  const std::string name = os.attr("fsencode")(*fspath).cast<std::string>();
  if (name.find('\0') != std::string::npos)
    arg_value_fail(op, "expected path without NUL bytes, got " + std::string(py::repr(*fspath)));
  const py::object st = os.attr("stat")(*fspath);  // FileNotFoundError etc., naming the path
  const py::module_ stat = py::module_::import("stat");
  const py::object mode = st.attr("st_mode");
  if (stat.attr("S_ISDIR")(mode).cast<bool>()) {
    PyErr_SetObject(PyExc_IsADirectoryError, py::make_tuple(EISDIR, "Is a directory", *fspath).ptr());
    throw py::error_already_set();
  }
  if (!stat.attr("S_ISREG")(mode).cast<bool>()) {
    PyErr_SetObject(PyExc_OSError,
                    py::str("fastnn.ops.{}: expected a regular file, got {!r}").format(op, *fspath).ptr());
    throw py::error_already_set();
  }
  py::module_::import("builtins").attr("open")(*fspath, "rb").attr("close")();  // PermissionError etc.
  return {name, st.attr("st_size").cast<int64_t>()};
}

[[noreturn]] void io_error(const char* op, const py::object& fspath, const char* what) {
  PyErr_SetObject(PyExc_OSError, py::str("fastnn.ops.{}: {} {!r}").format(op, what, fspath).ptr());
  throw py::error_already_set();
}

// vocab: a list (or tuple) of V distinct str (their UTF-8 bytes, undecodable bytes kept by
// surrogateescape as word2vec_count_file gives them) or bytes.
std::vector<std::string> vocab_arg(const char* op, py::handle obj, int64_t v) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    arg_type_fail(op, "expected vocab to be a list of str, got " + type_name(obj));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  const int64_t n = static_cast<int64_t>(py::len(seq));
  if (n != v) {
    arg_value_fail(op, "expected vocab of V = " + std::to_string(v) + " words (the rows of syn0), got " +
                           std::to_string(n));
  }
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  std::unordered_map<std::string, int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    const py::object w = seq[static_cast<size_t>(i)];
    if (PyUnicode_Check(w.ptr())) {
      const py::object b =
          py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(w.ptr(), "utf-8", "surrogateescape"));
      if (!b) {  // a lone surrogate that no byte escapes to
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) throw py::error_already_set();
        PyErr_Clear();
        arg_value_fail(op, "expected vocab words that encode as UTF-8 (surrogateescape), got " +
                               std::string(py::repr(w)) + " at position " + std::to_string(i));
      }
      out.push_back(b.cast<std::string>());
    } else if (PyBytes_Check(w.ptr())) {
      out.push_back(w.cast<std::string>());
    } else {
      arg_type_fail(op, "expected vocab to be a list of str, got an element of type " + type_name(w) +
                            " at position " + std::to_string(i));
    }
    const auto [it, added] = seen.emplace(out.back(), i);
    if (!added) {
      arg_value_fail(op, "expected vocab without repeats, got " + std::string(py::repr(w)) +
                             " at positions " + std::to_string(it->second) + " and " + std::to_string(i));
    }
  }
  return out;
}

py::tuple train_file(py::handle syn0, py::handle path, py::handle vocab_o, py::handle syn1neg,
                     py::handle syn1, py::handle sample_int, py::handle cum_table, py::handle points,
                     py::handle codes, py::handle code_lengths, py::handle sg, py::handle negative,
                     py::handle window, py::handle shrink_windows, py::handle cbow_mean, py::handle alpha,
                     py::handle min_alpha, py::handle progress, py::handle seed, py::handle compute_loss,
                     py::handle num_threads, py::handle isa_o) {
  const char* op = "word2vec_train_file";
  const Isa isa = isa_arg(op, isa_o);
  const Tables t(op, syn0, syn1neg, syn1, sample_int, cum_table, points, codes, code_lengths);
  const Word2VecOptions o = options(op, sg, negative, window, shrink_windows, cbow_mean, alpha, min_alpha,
                                    progress, seed, compute_loss);
  const Word2VecArgs a = t.meta(op, o, {});
  const std::vector<std::string> vocab = vocab_arg(op, vocab_o, a.v);
  py::object fspath;
  const auto [name, size] = file_arg(op, path, &fspath);
  const int nt = threads_arg(op, num_threads);
  try {
    return result(run_kernel(op, [&] { return word2vec_train_file(a, name, size, vocab, isa, nt); }));
  } catch (const Word2VecIoError& e) {
    io_error(op, fspath, e.what());
  }
}

py::tuple count_file(py::handle path, py::handle num_threads) {
  const char* op = "word2vec_count_file";
  py::object fspath;
  const auto [name, size] = file_arg(op, path, &fspath);
  const int nt = threads_arg(op, num_threads);
  Word2VecCounts c;
  try {
    c = run_kernel(op, [&] { return word2vec_count_file(name, size, nt); });
  } catch (const Word2VecIoError& e) {
    io_error(op, fspath, e.what());
  }
  py::list words(c.words.size());
  for (size_t i = 0; i < c.words.size(); ++i) {
    PyObject* s = PyUnicode_DecodeUTF8(c.words[i].data(), static_cast<Py_ssize_t>(c.words[i].size()),
                                       "surrogateescape");
    if (!s) throw py::error_already_set();
    PyList_SET_ITEM(words.ptr(), static_cast<Py_ssize_t>(i), s);
  }
  py::array_t<int64_t> counts(static_cast<py::ssize_t>(c.counts.size()));
  if (!c.counts.empty())
    std::copy(c.counts.begin(), c.counts.end(), static_cast<int64_t*>(counts.mutable_data()));
  return py::make_tuple(words, counts, c.tokens, c.lines);
}

}  // namespace

void bind_word2vec(py::module_& m) {
  const auto options = [] {
    return std::make_tuple(
        py::arg("syn1neg") = py::none(), py::arg("syn1") = py::none(), py::arg("sample_int") = py::none(),
        py::arg("cum_table") = py::none(), py::arg("points") = py::none(), py::arg("codes") = py::none(),
        py::arg("code_lengths") = py::none(), py::arg("sg") = true, py::arg("negative") = 5,
        py::arg("window") = 5, py::arg("shrink_windows") = true, py::arg("cbow_mean") = true,
        py::arg("alpha") = 0.025, py::arg("min_alpha") = 0.0001,
        py::arg("progress") = py::make_tuple(0.0, 1.0), py::arg("seed") = 1, py::arg("compute_loss") = false,
        py::arg("num_threads") = py::none(), py::arg("isa") = py::none());
  };
  std::apply(
      [&](auto&&... kw) {
        m.def("word2vec_train", &train, py::arg("syn0"), py::arg("words"), py::arg("sentence_ends"),
              py::kw_only(), kw...,
              "(raw_words, effective_words, loss): word2vec training on an in-memory corpus, weights updated "
              "in "
              "place; see fastnn.ops.word2vec_train.");
        m.def("word2vec_train_file", &train_file, py::arg("syn0"), py::arg("path"), py::arg("vocab"),
              py::kw_only(), kw...,
              "(raw_words, effective_words, loss): word2vec training on a text file; see "
              "fastnn.ops.word2vec_train_file.");
      },
      options());
  m.def("word2vec_count_file", &count_file, py::arg("path"), py::kw_only(),
        py::arg("num_threads") = py::none(),
        "(words, counts, tokens, lines) of a text file; see fastnn.ops.word2vec_count_file.");
}

}  // namespace fastnn::bind
