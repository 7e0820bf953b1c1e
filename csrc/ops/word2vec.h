// word2vec training (Mikolov et al. 2013; gensim's Word2Vec, whose update rules these are):
// skip-gram or CBOW, with negative sampling (NS), hierarchical softmax (HS) or both, trained in
// place on float32 weights by plain SGD. fastnn.ops.word2vec_train trains on an in-memory corpus,
// word2vec_train_file on a text file read here in C++, word2vec_count_file counts a file's tokens.
//
// Weights (V words, D >= 1 dims, all float32 row-major, updated in place):
//   syn0 (V, D) input vectors; syn1neg (V, D) the NS output vectors (needed iff negative > 0);
//   syn1 (R, D), R >= V - 1, the HS inner-node vectors (needed iff HS is on: points, codes,
//   code_lengths given; word w's path is points[w, k] with code codes[w, k], k < code_lengths[w]).
//
// Corpus. In memory: words (N,) int32 in [0, V), sentence_ends (S,) non-decreasing with last N:
// sentence s is words[ends[s-1] : ends[s]] (ends[-1] = 0). From a file: a line is a sentence,
// its tokens split on ASCII whitespace (space, \t, \n, \v, \f, \r; bytes kept as they are,
// UTF-8 or not), tokens not in the vocabulary dropped (gensim drops unknown words before
// windowing); a sentence is its remaining words. A sentence of more than kW2vMaxSentence
// (10000) words is cut into pieces of 10000 (the last shorter), each trained as a sentence of
// its own (gensim's LineSentence does this).
//
// Jobs. The pieces, in order, are grouped greedily into jobs of at most 10000 words: a job takes
// pieces until the next one would bring it past 10000 (empty sentences belong to whichever job
// is open). A file is cut into ranges first, and its jobs never span two: range k (k = 0, 1, ...;
// R = kW2vFileRange = 65536 bytes) begins at the first line start in [k R, (k + 1) R), or, when
// no line starts there (a line longer than R runs through the whole range), at the first token
// start or line start at or after k R (the file's end when there is none); it ends where range
// k + 1 begins. Lines of at most R bytes are therefore never cut; longer ones are cut (into two
// sentences) where such a range begins. A job's position s is where its first piece begins: in
// memory its first word's index in words[]; in a file a byte offset: the start of the piece's
// line (of its range, when the range begins within the line) for a line's first piece, the
// piece's first word for a later one.
// The ranges, and so the jobs, depend on the file alone, never on the thread count.
//
// Threads: jobs (file ranges) are handed to threads in order through an atomic counter. The
// threads update the shared weights without locks ("Hogwild", as word2vec.c and gensim do): with
// more than one thread the updates of concurrent jobs race, which is the algorithm's, and the
// results vary from run to run. With one thread a call is deterministic (the same bits every run
// for the same ISA; the ISAs differ in rounding).
//
// Learning rate. The call is the fraction progress = (p0, p1) of the whole training: the job at
// position s of a corpus of T positions (N words; a file's size in bytes) trains with
//   alpha_job = float(alpha - (alpha - min_alpha) * (p0 + (p1 - p0) * s / T))   (in float64).
//
// Random numbers: splitmix64 (Steele, Lea and Flood 2014), all arithmetic mod 2^64. Its output
// function is out(z) = y ^ (y >> 31) with y = (t ^ (t >> 27)) * 0x94D049BB133111EB, t = (z ^ (z
// >> 30)) * 0xBF58476D1CE4E5B9; mix(z) = out(z + G), G = 0x9E3779B97F4A7C15. A job's state
// starts at
//   x = mix(mix(mix(seed) ^ bits(p0)) ^ s)      (bits: the IEEE-754 binary64 bits of p0 + 0.0)
// and each draw is x += G, r = out(x) >> 32: a uniform 32-bit r. A job draws, sentence by
// sentence (piece by piece) in order:
//   1. with sample_int: one r per word of the sentence, in order; word w is kept iff
//      sample_int[w] == 0xFFFFFFFF or r < sample_int[w]. The kept words form the sentence that is
//      trained (the effective words);
//   2. then for each kept position i in order: with shrink_windows, b = r % window (else b = 0),
//      and the window of i is w = window - b: context positions j in [i - w, i + w], j != i,
//      within the kept sentence, in increasing j;
//   3. then i's predictions, each negative sample drawing one r when it is made (below).
// A negative sample is the smallest t with cum_table[t] > x, x = (r * cum_table[V - 1]) >> 32
// (so word t has probability (cum_table[t] - cum_table[t - 1]) / cum_table[V - 1] up to 2^-32).
//
// One prediction of word c from a vector l1 (label 1 or 0) with output row u:
//   f = l1 . u;  g = (label - sigmoid(f)) * alpha_job;  work += g u;  u += g l1   (u's old value
//   in work's term). Loss (compute_loss): -log sigmoid(f) for label 1, -log sigmoid(-f) for 0.
// The predictions of c, in order: HS: k < code_lengths[c], u = syn1[points[c, k]], label
// 1 - codes[c, k]; then NS: d = 0 .. negative: d = 0 is u = syn1neg[c] with label 1, d > 0 draws
// a sample t (skipped, not redrawn, when t == c) and is u = syn1neg[t] with label 0.
//   skip-gram: for each kept i (c = its word) and each context j of i in order: l1 = syn0[word j],
//     work = 0, c's predictions, then syn0[word j] += work.
//   CBOW: for each kept i: l1 = the sum over i's contexts j of syn0[word j] (cnt of them; i is
//     skipped, drawing nothing more, when cnt = 0), l1 *= 1 / cnt when cbow_mean; work = 0,
//     c's predictions; work *= 1 / cnt unless cbow_mean; syn0[word j] += work for each context j.
// (gensim applies HS's work to syn0 before NS's when both are on; here both go into one work.)
// Predictions on distinct rows are computed together (their dots, then one vectorised sigmoid,
// then the updates), which gives the bits of doing them one at a time; a row met again within a
// prediction's group starts a new group, so repeated samples see each other's updates.
// sigmoid is the logistic function in float32 without a cut-off (gensim's table skips |f| > 6):
// e = exp(-|f|), q = 1 / (1 + e), sigmoid(|f|) = q, sigmoid(-|f|) = e q, and g takes the one it
// needs (label - sigmoid(f) = sigmoid(-f) for label 1, no cancellation): within 4 float32 ulps
// where it is a normal float (2.7 measured over f in [0, 103], exp within 1), finite for every
// finite f. The loss term is max(x, 0) + log1p(e) in float64, x = -f (label 1) or f (label 0),
// summed per job in prediction order, the jobs' sums added in job order (a file's per range,
// then the ranges in order).
//
// Results: raw words (the call's words; a file's in-vocabulary tokens), effective words (kept by
// the subsampling), the loss (0 unless compute_loss).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

constexpr int64_t kW2vMaxSentence = 10000;  // words of a sentence piece and of a job
constexpr int64_t kW2vFileRange = 65536;    // bytes of a file range (R above)
constexpr int64_t kW2vMaxNegative = 1 << 20;
constexpr int64_t kW2vMaxWindow = 2147483647;
constexpr int kW2vGroup = 16;  // predictions computed together at most

// The options of a training call (the binding reads them; the meta function checks them).
struct Word2VecOptions {
  bool sg = true, shrink_windows = true, cbow_mean = true, compute_loss = false;
  int64_t negative = 5, window = 5;
  double alpha = 0.025, min_alpha = 0.0001, p0 = 0.0, p1 = 1.0;
  uint64_t seed = 1;
};

struct Word2VecArgs {
  int64_t v = 0, d = 0;  // words, dims
  int64_t r = 0, l = 0;  // syn1 rows, points / codes columns (HS)
  bool sg = true, hs = false, shrink = true, cbow_mean = true, compute_loss = false;
  int64_t negative = 0, window = 5;
  double alpha = 0.025, min_alpha = 0.0001, p0 = 0.0, p1 = 1.0;
  uint64_t seed = 1;
  float* syn0 = nullptr;
  float* syn1neg = nullptr;               // negative > 0
  float* syn1 = nullptr;                  // hs
  const uint32_t* sample_int = nullptr;   // null: no subsampling
  const uint32_t* cum_table = nullptr;    // negative > 0
  const int32_t* points = nullptr;        // hs: (V, L)
  const uint8_t* codes = nullptr;         // hs: (V, L)
  const int32_t* code_lengths = nullptr;  // hs: (V,)
};

struct Word2VecResult {
  int64_t raw_words = 0, effective_words = 0;
  double loss = 0.0;
};

// The rules of the training entries (csrc/ops/word2vec_meta.cpp; ArgError naming op): the
// weights and tables (dtypes, shapes, C order, the weights writeable and sharing no memory with
// each other or any other argument), the options (negative in [0, 2^20], window in [1, 2^31 - 1],
// alpha and min_alpha finite, 0 <= p0 <= p1 <= 1, NS or HS on). syn1neg / cum_table are required
// iff negative > 0, syn1 iff HS; points, codes and code_lengths come together. Arrays given but
// not used are checked all the same. The returned args carry the pointers.
Word2VecArgs word2vec_meta(const char* op, const ArrayRef& syn0, const ArrayRef& syn1neg,
                           const ArrayRef& syn1, const ArrayRef& sample_int, const ArrayRef& cum_table,
                           const ArrayRef& points, const ArrayRef& codes, const ArrayRef& code_lengths,
                           const Word2VecOptions& o, std::initializer_list<const ArrayRef*> others);
// The in-memory corpus: words int32 (N,), sentence_ends int64 (S,), C order (values: below).
void word2vec_corpus_meta(const char* op, const ArrayRef& words, const ArrayRef& sentence_ends);
// The value rules, read on the host before training (ValueError naming the first bad position):
// the tables (cum_table non-decreasing with a last entry > 0; code_lengths in [0, L], the points
// of each path in [0, R), its codes 0 or 1) and the corpus (words in [0, V); ends non-decreasing,
// in [0, N], the last N; no ends with N = 0).
void word2vec_check_tables(const char* op, const Word2VecArgs& a);
void word2vec_check_corpus(const char* op, const Word2VecArgs& a, const int32_t* words, int64_t n,
                           const int64_t* ends, int64_t s);

// The in-memory entry: a (checked) corpus of n words in s sentences.
Word2VecResult word2vec_train(const Word2VecArgs& a, const int32_t* words, int64_t n, const int64_t* ends,
                              int64_t s, Isa isa, int nthreads);

// A read error in the file entries (the binding raises OSError naming the file).
struct Word2VecIoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The file entry: vocab[i] the bytes of word i (a.v of them, distinct: the binding checks); a
// file of `size` bytes (what the binding's stat found; bytes past it are not read).
Word2VecResult word2vec_train_file(const Word2VecArgs& a, const std::string& path, int64_t size,
                                   const std::vector<std::string>& vocab, Isa isa, int nthreads);

// Token counts of a file (the same tokens as word2vec_train_file): each distinct token once in
// order of first occurrence with its count, the tokens in all, the lines (newlines, plus one for
// a last line without one; empty lines counted).
struct Word2VecCounts {
  std::vector<std::string> words;
  std::vector<int64_t> counts;
  int64_t tokens = 0, lines = 0;
};
Word2VecCounts word2vec_count_file(const std::string& path, int64_t size, int nthreads);

// ---------------------------------------------------------------------------------------------
// The per-ISA kernels (csrc/cpu/word2vec_impl.h compiled in each ISA's unit).

// One job: pieces [ends[p - 1], ends[p]) of words (ends[-1] = 0, none empty), trained with its
// alpha from its first RNG state rng. The scratch is a thread's, made once per call for every
// job it trains. The negative sampler: `bucket` (2^bucket_bits + 1 entries, or null) narrows the
// search: the sample of a draw r in bucket b = r >> (32 - bucket_bits) lies in
// [bucket[b], bucket[b + 1]].
struct Word2VecJob {
  const int32_t* words = nullptr;
  const int64_t* ends = nullptr;
  int64_t pieces = 0;
  float alpha = 0.0f;
  uint64_t rng = 0;
};
struct Word2VecSampler {
  const uint32_t* bucket = nullptr;
  int bucket_bits = 0;
};
struct Word2VecScratch {
  std::vector<float> neu1, work;  // d floats each
  std::vector<int32_t> kept;      // a piece's kept words
  std::vector<float*> outs;       // CBOW's context rows
  std::vector<float*> rows[2];    // two words' predictions (L + negative + 1 each): rows, labels
  std::vector<float> labels[2];
  explicit Word2VecScratch(const Word2VecArgs& a);
};
struct Word2VecKernels {
  // Trains one job; returns its effective words, adds its loss to *loss.
  int64_t (*train_job)(const Word2VecArgs& a, const Word2VecSampler& sampler, const Word2VecJob& job,
                       Word2VecScratch* scratch, double* loss);
};
extern const Word2VecKernels word2vec_kernels_default, word2vec_kernels_avx2, word2vec_kernels_avx512;

// splitmix64 (the contract above): out(z), mix(z), one draw; each unit's own copy (an anonymous
// namespace: an ISA unit's copy must never stand in for the baseline's; scripts/check_baseline_isa.py).
constexpr uint64_t kW2vGolden = 0x9E3779B97F4A7C15ull;
namespace {
inline uint64_t w2v_out(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t w2v_mix(uint64_t z) { return w2v_out(z + kW2vGolden); }
inline uint32_t w2v_draw(uint64_t* x) {
  *x += kW2vGolden;
  return static_cast<uint32_t>(w2v_out(*x) >> 32);
}
}  // namespace
// A job's first state.
uint64_t word2vec_job_state(uint64_t seed, double p0, int64_t position);

}  // namespace fastnn
