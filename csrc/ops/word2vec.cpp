// word2vec front door: the jobs of an in-memory corpus, the ranges of a file (read here with
// std::ifstream, tokenised, mapped through a hash table of the vocabulary), the negative
// sampler's buckets, the threads (an atomic counter hands out jobs / ranges), the per-job
// learning rate and RNG state; the training itself is the ISA's job kernel
// (csrc/cpu/word2vec_impl.h). The binding has checked every argument.
#include "ops/word2vec.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {

Word2VecScratch::Word2VecScratch(const Word2VecArgs& a)
    : neu1(static_cast<size_t>(a.d)),
      work(static_cast<size_t>(a.d)),
      kept(static_cast<size_t>(kW2vMaxSentence)),
      outs(static_cast<size_t>(2 * std::min<int64_t>(a.window, kW2vMaxSentence))) {
  const size_t n = static_cast<size_t>((a.hs ? a.l : 0) + a.negative + 1);
  for (int k = 0; k < 2; ++k) rows[k].resize(n), labels[k].resize(n);
}

uint64_t word2vec_job_state(uint64_t seed, double p0, int64_t position) {
  const double p = p0 + 0.0;  // -0 as +0
  uint64_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  return w2v_mix(w2v_mix(w2v_mix(seed) ^ bits) ^ static_cast<uint64_t>(position));
}

namespace {

int ceil_log2(uint64_t x) {
  int b = 0;
  while ((uint64_t{1} << b) < x) ++b;
  return b;
}

// The negative sampler's buckets (Word2VecSampler): 2^bits buckets of the 32-bit draws, about
// eight per word up to 2^16 (a 256 KiB table that stays in cache), fewer for a call with few
// words to train (work_hint: the table is made per call), none for tiny vocabularies. Most
// samples are then found in their bucket's first step.
struct Sampler {
  std::vector<uint32_t> bucket;
  Word2VecSampler sp;
  Sampler(const Word2VecArgs& a, int64_t work_hint) {
    if (a.negative <= 0 || a.v < 16) return;
    int bits = std::min(ceil_log2(static_cast<uint64_t>(a.v)) + 3, 16);
    bits = std::min(bits, std::max(4, ceil_log2(static_cast<uint64_t>(std::max<int64_t>(work_hint, 1)))));
    const int64_t k = int64_t{1} << bits;
    bucket.resize(static_cast<size_t>(k + 1));
    const uint32_t* cum = a.cum_table;
    const uint64_t total = cum[a.v - 1];
    const bool walk = a.v <= 8 * k;  // O(k + V) walk, else a binary search per bucket
    int64_t t = 0;
    for (int64_t b = 0; b < k; ++b) {
      const uint32_t x = static_cast<uint32_t>(((static_cast<uint64_t>(b) << (32 - bits)) * total) >> 32);
      if (walk) {
        while (cum[t] <= x) ++t;  // stops by V - 1: x < total
      } else {
        t = std::upper_bound(cum + t, cum + a.v, x) - cum;
      }
      bucket[static_cast<size_t>(b)] = static_cast<uint32_t>(t);
    }
    bucket[static_cast<size_t>(k)] = static_cast<uint32_t>(a.v - 1);
    sp.bucket = bucket.data();
    sp.bucket_bits = bits;
  }
};

float job_alpha(const Word2VecArgs& a, int64_t position, int64_t total) {
  const double frac = a.p0 + (a.p1 - a.p0) * static_cast<double>(position) / static_cast<double>(total);
  return static_cast<float>(a.alpha - (a.alpha - a.min_alpha) * frac);
}

int thread_count(int nthreads, int64_t items) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({static_cast<int64_t>(nthreads), items, 1024})));
}

}  // namespace

Word2VecResult word2vec_train(const Word2VecArgs& a, const int32_t* words, int64_t n, const int64_t* ends,
                              int64_t s, Isa isa, int nthreads) {
  Word2VecResult res;
  res.raw_words = n;
  if (n == 0) return res;
  // The jobs: [w0, w1) of words, starting in sentence s0 (w0 is a piece's first word).
  struct Job {
    int64_t w0, w1, s0;
  };
  std::vector<Job> jobs;
  int64_t cur = 0, w0 = 0, s0 = 0;
  for (int64_t t = 0; t < s; ++t) {
    const int64_t b = t ? ends[t - 1] : 0, e = ends[t];
    for (int64_t pb = b; pb < e; pb += kW2vMaxSentence) {
      const int64_t m = std::min(e - pb, kW2vMaxSentence);
      if (cur > 0 && cur + m > kW2vMaxSentence) {
        jobs.push_back({w0, pb, s0});
        cur = 0;
      }
      if (cur == 0) w0 = pb, s0 = t;
      cur += m;
    }
  }
  if (cur > 0) jobs.push_back({w0, n, s0});
  const int64_t njobs = static_cast<int64_t>(jobs.size());
  const Word2VecKernels& k = FASTNN_KERNEL_TABLE(word2vec_kernels, isa);
  const Sampler sampler(a, n);
  std::vector<int64_t> eff(static_cast<size_t>(njobs), 0);
  std::vector<double> loss(static_cast<size_t>(njobs), 0.0);
  std::atomic<int64_t> next{0};
  parallel_for(thread_count(nthreads, njobs), [&](int, int) {
    Word2VecScratch scratch(a);
    std::vector<int64_t> pieces;
    for (;;) {
      const int64_t j = next.fetch_add(1, std::memory_order_relaxed);
      if (j >= njobs) break;
      const Job& jb = jobs[static_cast<size_t>(j)];
      pieces.clear();
      for (int64_t t = jb.s0; t < s; ++t) {
        const int64_t sb = std::max(t ? ends[t - 1] : 0, jb.w0), se = std::min(ends[t], jb.w1);
        if (sb >= jb.w1) break;
        for (int64_t pb = sb; pb < se; pb += kW2vMaxSentence)
          pieces.push_back(std::min(se, pb + kW2vMaxSentence) - jb.w0);
      }
      Word2VecJob job;
      job.words = words + jb.w0;
      job.ends = pieces.data();
      job.pieces = static_cast<int64_t>(pieces.size());
      job.alpha = job_alpha(a, jb.w0, n);
      job.rng = word2vec_job_state(a.seed, a.p0, jb.w0);
      eff[static_cast<size_t>(j)] = k.train_job(a, sampler.sp, job, &scratch, &loss[static_cast<size_t>(j)]);
    }
  });
  for (int64_t j = 0; j < njobs; ++j) {
    res.effective_words += eff[static_cast<size_t>(j)];
    res.loss += loss[static_cast<size_t>(j)];
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Files

namespace {

inline bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

inline uint64_t token_hash(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9FB21C651E98DF25ull;
  uint64_t h = static_cast<uint64_t>(n) * kW2vGolden;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    h = (h ^ x) * kMul;
    h ^= h >> 29;
  }
  uint64_t x = 0;
  std::memcpy(&x, p, n);
  return w2v_out((h ^ x) * kMul);
}

// Distinct byte strings in order of insertion, found by an open-addressing hash table.
class TokenTable {
 public:
  TokenTable() : slots_(1024, 0), hashes_(1024, 0) { offs_.push_back(0); }

  int64_t size() const { return static_cast<int64_t>(offs_.size()) - 1; }
  std::string_view key(int64_t i) const {
    return std::string_view(
        arena_.data() + offs_[static_cast<size_t>(i)],
        static_cast<size_t>(offs_[static_cast<size_t>(i) + 1] - offs_[static_cast<size_t>(i)]));
  }
  int64_t find(const char* p, size_t n, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const int64_t s = slots_[i];
      if (s == 0) return -1;
      if (hashes_[i] == h && key(s - 1) == std::string_view(p, n)) return s - 1;
    }
  }
  // The index of p[0, n), inserted when new (*added says which).
  int64_t insert(const char* p, size_t n, uint64_t h, bool* added) {
    const size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    for (;; i = (i + 1) & mask) {
      const int64_t s = slots_[i];
      if (s == 0) break;
      if (hashes_[i] == h && key(s - 1) == std::string_view(p, n)) {
        *added = false;
        return s - 1;
      }
    }
    *added = true;
    arena_.append(p, n);
    offs_.push_back(static_cast<int64_t>(arena_.size()));
    const int64_t idx = size() - 1;
    slots_[i] = idx + 1;
    hashes_[i] = h;
    if (static_cast<size_t>(size()) * 2 > slots_.size()) grow();
    return idx;
  }

 private:
  void grow() {
    std::vector<int64_t> slots(slots_.size() * 2, 0);
    std::vector<uint64_t> hashes(slots.size(), 0);
    const size_t mask = slots.size() - 1;
    for (size_t j = 0; j < slots_.size(); ++j) {
      if (slots_[j] == 0) continue;
      size_t i = hashes_[j] & mask;
      while (slots[i] != 0) i = (i + 1) & mask;
      slots[i] = slots_[j];
      hashes[i] = hashes_[j];
    }
    slots_.swap(slots);
    hashes_.swap(hashes);
  }

  std::vector<int64_t> slots_;  // index + 1, 0 empty
  std::vector<uint64_t> hashes_;
  std::string arena_;
  std::vector<int64_t> offs_;
};

// A file read at given offsets; bytes past `size` (the size the binding found) are never read.
class FileReader {
 public:
  FileReader(const std::string& path, int64_t size) : path_(path), size_(size), f_(path, std::ios::binary) {
    if (!f_) throw Word2VecIoError("cannot open");
  }
  int64_t size() const { return size_; }
  // Up to n bytes at pos into out; fewer at the end (a file that shrank ends early).
  int64_t read(int64_t pos, int64_t n, char* out) {
    n = std::min(n, size_ - pos);
    if (n <= 0) return 0;
    f_.clear();
    f_.seekg(static_cast<std::streamoff>(pos));
    f_.read(out, static_cast<std::streamsize>(n));
    if (f_.bad()) throw Word2VecIoError("read error");
    return static_cast<int64_t>(f_.gcount());
  }

 private:
  std::string path_;
  int64_t size_;
  std::ifstream f_;
};

constexpr int64_t kChunk = 1 << 16;

// Where range k begins (csrc/ops/word2vec.h).
int64_t range_start(FileReader& rd, int64_t k, std::vector<char>& buf) {
  const int64_t size = rd.size();
  if (k == 0) return 0;
  const int64_t lo = k * kW2vFileRange;
  if (lo >= size) return size;
  // A newline at p in [lo - 1, lo + R - 1): the line starting at p + 1 is in the range.
  const int64_t lim = std::min(lo + kW2vFileRange - 1, size);
  for (int64_t pos = lo - 1; pos < lim;) {
    const int64_t got = rd.read(pos, std::min(kChunk, lim - pos), buf.data());
    if (got <= 0) return size;
    const void* nl = std::memchr(buf.data(), '\n', static_cast<size_t>(got));
    if (nl) return pos + (static_cast<const char*>(nl) - buf.data()) + 1;
    pos += got;
  }
  // None: the first token start or line start at or after lo.
  unsigned char prev = 0;
  bool have_prev = false;
  for (int64_t pos = lo - 1; pos < size;) {
    const int64_t got = rd.read(pos, std::min(kChunk, size - pos), buf.data());
    if (got <= 0) return size;
    for (int64_t i = 0; i < got; ++i) {
      const unsigned char c = static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      if (have_prev && (prev == '\n' || (is_space(prev) && !is_space(c)))) return pos + i;
      prev = c;
      have_prev = true;
    }
    pos += got;
  }
  return size;
}

// The tokens starting in [s, e) (e is the next range's start: no token crosses it), in order:
// tok(p, n, pos) for each token of at most max_len bytes (longer ones are skipped: no word
// that long is looked for), eol(pos) for each newline.
template <class Tok, class Eol>
void scan_tokens(FileReader& rd, int64_t s, int64_t e, size_t max_len, std::vector<char>& buf, Tok tok,
                 Eol eol) {
  std::string carry;      // the bytes of a token begun in an earlier chunk
  bool in_token = false;  // a token runs into this chunk from the last one
  bool too_long = false;  // ... and is already longer than max_len
  int64_t token_pos = 0;
  for (int64_t pos = s; pos < e;) {
    const int64_t got = rd.read(pos, std::min(kChunk, e - pos), buf.data());
    if (got <= 0) break;
    const char* b = buf.data();
    int64_t ts = in_token ? 0 : -1;  // start of the token in this chunk
    for (int64_t i = 0; i < got; ++i) {
      const unsigned char c = static_cast<unsigned char>(b[i]);
      if (!is_space(c)) {
        if (ts < 0) {
          ts = i;
          token_pos = pos + i;
        }
        continue;
      }
      if (ts >= 0) {
        const size_t len = static_cast<size_t>(i - ts);
        if (in_token) {
          if (!too_long && carry.size() + len <= max_len) {
            carry.append(b + ts, len);
            tok(carry.data(), carry.size(), token_pos);
          }
          carry.clear();
          in_token = too_long = false;
        } else if (len <= max_len) {
          tok(b + ts, len, token_pos);
        }
        ts = -1;
      }
      if (c == '\n') eol(pos + i);
    }
    if (ts >= 0) {  // the token goes on in the next chunk
      const size_t len = static_cast<size_t>(got - ts);
      if (!in_token) carry.clear();
      if (!too_long && carry.size() + len <= max_len)
        carry.append(b + ts, len);
      else
        too_long = true;
      in_token = true;
    }
    pos += got;
  }
  if (in_token && !too_long) tok(carry.data(), carry.size(), token_pos);
}

}  // namespace

Word2VecResult word2vec_train_file(const Word2VecArgs& a, const std::string& path, int64_t size,
                                   const std::vector<std::string>& vocab, Isa isa, int nthreads) {
  Word2VecResult res;
  if (size <= 0) return res;
  TokenTable table;
  size_t max_len = 0;
  for (const std::string& w : vocab) {
    bool added;
    table.insert(w.data(), w.size(), token_hash(w.data(), w.size()), &added);
    max_len = std::max(max_len, w.size());
  }
  const int64_t nranges = (size + kW2vFileRange - 1) / kW2vFileRange;
  const Word2VecKernels& k = FASTNN_KERNEL_TABLE(word2vec_kernels, isa);
  const Sampler sampler(a, size / 8);
  std::vector<Word2VecResult> part(static_cast<size_t>(nranges));
  std::atomic<int64_t> next{0};
  parallel_for(thread_count(nthreads, nranges), [&](int, int) {
    FileReader rd(path, size);
    std::vector<char> buf(static_cast<size_t>(kChunk));
    Word2VecScratch scratch(a);
    std::vector<int32_t> words(static_cast<size_t>(2 * kW2vMaxSentence));
    std::vector<int64_t> ends;
    for (;;) {
      const int64_t r = next.fetch_add(1, std::memory_order_relaxed);
      if (r >= nranges) break;
      const int64_t s = range_start(rd, r, buf), e = range_start(rd, r + 1, buf);
      Word2VecResult& out = part[static_cast<size_t>(r)];
      if (s >= e) continue;
      // The open job: words[0, job) in pieces ends; the piece being read: words[job, job + piece).
      int64_t job = 0, piece = 0, job_pos = 0, piece_pos = 0, sentence_pos = s;
      bool first_piece = true;  // the piece being read is its sentence's first
      ends.clear();
      auto train = [&] {
        Word2VecJob jb;
        jb.words = words.data();
        jb.ends = ends.data();
        jb.pieces = static_cast<int64_t>(ends.size());
        jb.alpha = job_alpha(a, job_pos, size);
        jb.rng = word2vec_job_state(a.seed, a.p0, job_pos);
        out.effective_words += k.train_job(a, sampler.sp, jb, &scratch, &out.loss);
      };
      auto end_piece = [&] {
        if (piece == 0) return;
        if (job > 0 && job + piece > kW2vMaxSentence) {
          train();
          std::memmove(words.data(), words.data() + job, static_cast<size_t>(piece) * sizeof(int32_t));
          job = 0;
          ends.clear();
        }
        if (job == 0) job_pos = piece_pos;
        job += piece;
        piece = 0;
        ends.push_back(job);
      };
      scan_tokens(
          rd, s, e, max_len, buf,
          [&](const char* p, size_t n, int64_t pos) {
            const int64_t idx = table.find(p, n, token_hash(p, n));
            if (idx < 0) return;
            ++out.raw_words;
            if (piece == 0) piece_pos = first_piece ? sentence_pos : pos;
            words[static_cast<size_t>(job + piece++)] = static_cast<int32_t>(idx);
            if (piece == kW2vMaxSentence) {
              end_piece();
              first_piece = false;
            }
          },
          [&](int64_t pos) {
            end_piece();
            first_piece = true;
            sentence_pos = pos + 1;
          });
      end_piece();
      if (job > 0) train();
    }
  });
  for (const Word2VecResult& p : part) {
    res.raw_words += p.raw_words;
    res.effective_words += p.effective_words;
    res.loss += p.loss;
  }
  return res;
}

Word2VecCounts word2vec_count_file(const std::string& path, int64_t size, int nthreads) {
  Word2VecCounts res;
  if (size <= 0) return res;
  const int64_t nranges = (size + kW2vFileRange - 1) / kW2vFileRange;
  // Thread t counts the ranges [R t / nt, R (t + 1) / nt): its tables, merged in thread order,
  // keep the order of first occurrence.
  const int nt = thread_count(nthreads, nranges);
  std::vector<TokenTable> tables(static_cast<size_t>(nt));
  std::vector<std::vector<int64_t>> counts(static_cast<size_t>(nt));
  std::vector<int64_t> tokens(static_cast<size_t>(nt), 0), lines(static_cast<size_t>(nt), 0);
  bool last_newline = false;
  parallel_for(nt, [&](int t, int cnt) {
    FileReader rd(path, size);
    std::vector<char> buf(static_cast<size_t>(kChunk));
    long r0, r1;
    split_range(static_cast<long>(nranges), t, cnt, &r0, &r1);
    TokenTable& tab = tables[static_cast<size_t>(t)];
    std::vector<int64_t>& c = counts[static_cast<size_t>(t)];
    if (r0 >= r1) return;
    int64_t s = range_start(rd, r0, buf);
    const int64_t e = range_start(rd, r1, buf);
    if (s < e) {
      scan_tokens(
          rd, s, e, std::numeric_limits<size_t>::max(), buf,
          [&](const char* p, size_t n, int64_t) {
            bool added;
            const int64_t i = tab.insert(p, n, token_hash(p, n), &added);
            if (added) c.push_back(0);
            ++c[static_cast<size_t>(i)];
            ++tokens[static_cast<size_t>(t)];
          },
          [&](int64_t) { ++lines[static_cast<size_t>(t)]; });
    }
    if (r1 == nranges) {
      char last = 0;
      last_newline = rd.read(size - 1, 1, &last) == 1 && last == '\n';
    }
  });
  TokenTable all;
  for (int t = 0; t < nt; ++t) {
    const TokenTable& tab = tables[static_cast<size_t>(t)];
    for (int64_t i = 0; i < tab.size(); ++i) {
      const std::string_view w = tab.key(i);
      bool added;
      const int64_t j = all.insert(w.data(), w.size(), token_hash(w.data(), w.size()), &added);
      if (added) res.counts.push_back(0);
      res.counts[static_cast<size_t>(j)] += counts[static_cast<size_t>(t)][static_cast<size_t>(i)];
    }
    res.tokens += tokens[static_cast<size_t>(t)];
    res.lines += lines[static_cast<size_t>(t)];
  }
  if (!last_newline) ++res.lines;
  res.words.reserve(static_cast<size_t>(all.size()));
  for (int64_t i = 0; i < all.size(); ++i) res.words.emplace_back(all.key(i));
  return res;
}

}  // namespace fastnn
