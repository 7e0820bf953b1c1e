"""Reference word2vec training in float64 (fastnn.ops' names and signatures; the contract is
csrc/ops/word2vec.h): the same jobs, learning rates and random draws as the kernels, draw for
draw, with every prediction computed in float64 one at a time. Slow: for tiny corpora.

word2vec_train / word2vec_train_file update the weights they are given in place (float64 arrays
directly; others through a float64 copy, rounded once at the end) and return (raw_words,
effective_words, loss). With magnitudes (a dict), they also fill magnitudes[name] for each weight
with |initial value| + the sum of |terms| that went into each element (the scale of its float32
rounding errors; see tests/test_word2vec_kernel.py) and magnitudes["loss"] with the loss's.
word2vec_sg_step / word2vec_cbow_step are one update with explicit targets."""

import re
import struct

import numpy as np

MAX_SENTENCE = 10000  # words of a sentence piece and of a job
FILE_RANGE = 65536  # bytes of a file range
_G = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1
_SPACE = b" \t\n\v\f\r"
_TOKEN = re.compile(rb"[^ \t\n\v\f\r]+")


def _out(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix(z):
    return _out((z + _G) & _M64)


def job_state(seed, p0, position):
    """A job's first RNG state: mix(mix(mix(seed) ^ bits(p0)) ^ position)."""
    bits = struct.unpack("<Q", struct.pack("<d", float(p0) + 0.0))[0]
    return _mix(_mix(_mix(int(seed) & _M64) ^ bits) ^ (int(position) & _M64))


class _Rng:
    def __init__(self, state):
        self.x = state

    def draw(self):
        """The next uniform 32-bit r."""
        self.x = (self.x + _G) & _M64
        return _out(self.x) >> 32


def job_alpha(alpha, min_alpha, progress, position, total):
    """The job's learning rate, rounded to float32 (returned as a Python float)."""
    p0, p1 = progress
    return float(np.float32(alpha - (alpha - min_alpha) * (p0 + (p1 - p0) * position / total)))


def _sigmoid(f):
    return 1.0 / (1.0 + np.exp(-f)) if f >= 0 else np.exp(f) / (1.0 + np.exp(f))


def _predict(l1, preds, alpha, mags=None, l1_mag=0.0):
    """The predictions (array, row, label) from l1 in order: returns (work, loss, work's
    magnitude, the loss's magnitude).

    mags (dict id(array) -> magnitude array) hold, per element, a scale M of its float32 rounding
    error (tests/test_word2vec_kernel.py: the kernel is within C u M of this reference, u = 2^-24),
    and l1_mag is l1's. An update adds to M: |the new value| (its rounding); |the term| (the term's
    own rounding errors: g's, the sums'); the errors carried in from l1 and u (|g| l1_mag into a
    row, |g| M_u into work); and |x| times g's error, alpha sigmoid'(f) of f's (to first order), f's being
    D |l1|.|u| (the float32 dot) + |u|.l1_mag + |l1|.M_u."""
    d = l1.shape[0]
    work = np.zeros(d)
    loss = 0.0
    work_mag = np.zeros(d)
    loss_mag = 0.0
    for arr, row, label in preds:
        u = arr[row].copy()
        f = float(l1 @ u)
        g = (label - _sigmoid(f)) * alpha
        loss += np.logaddexp(0.0, -f if label else f)
        work += g * u
        arr[row] += g * l1
        if mags is not None:
            m = mags[id(arr)]
            u_mag = m[row].copy()
            al1, au = np.abs(l1), np.abs(u)
            df = d * float(al1 @ au) + float(au @ (l1_mag * np.ones(d))) + float(al1 @ u_mag)
            dg = abs(alpha) * _sigmoid(f) * _sigmoid(-f) * df  # sigmoid' (f): first order
            m[row] += np.abs(arr[row]) + abs(g) * (al1 + l1_mag) + dg * al1
            work_mag += abs(g) * (au + u_mag) + dg * au
            loss_mag += 1.0 + df
    return work, loss, work_mag, loss_mag


def _targets(c, hs, negative, sample, syn1, points, codes, code_lengths, syn1neg):
    """c's predictions (array, row, label), HS then NS, drawing the negatives by sample()."""
    preds = []
    if hs:
        for k in range(int(code_lengths[c])):
            preds.append((syn1, int(points[c, k]), 1 - int(codes[c, k])))
    if negative > 0:
        preds.append((syn1neg, c, 1))
        for _ in range(negative):
            t = sample()
            if t != c:
                preds.append((syn1neg, t, 0))
    return preds


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _step_targets(word, syn1neg, negatives, syn1, points, codes, code_lengths):
    preds = []
    if points is not None:
        points, codes = np.asarray(points), np.asarray(codes)
        for k in range(int(np.asarray(code_lengths)[word])):
            preds.append((syn1, int(points[word, k]), 1 - int(codes[word, k])))
    if syn1neg is not None:
        preds.append((syn1neg, word, 1))
        preds += [(syn1neg, int(t), 0) for t in negatives if t != word]
    return preds


def word2vec_sg_step(
    syn0, context, word, alpha, *, syn1neg=None, negatives=(), syn1=None, points=None, codes=None, code_lengths=None
):
    """One skip-gram update: predicts word from syn0[context] (HS along word's path when points
    is given, then NS when syn1neg is: word with label 1, each of negatives with label 0, those
    equal to word skipped), then syn0[context] += work. Float64 arrays updated in place; returns
    the loss of the step (the sum over its predictions)."""
    preds = _step_targets(word, syn1neg, negatives, syn1, points, codes, code_lengths)
    work, loss, _, _ = _predict(syn0[context].copy(), preds, alpha)
    syn0[context] += work
    return loss


def word2vec_cbow_step(
    syn0,
    contexts,
    word,
    alpha,
    *,
    cbow_mean=True,
    syn1neg=None,
    negatives=(),
    syn1=None,
    points=None,
    codes=None,
    code_lengths=None,
):
    """One CBOW update: l1 = the sum (cbow_mean: the mean) of syn0[contexts], word predicted from
    it as in word2vec_sg_step, work divided by len(contexts) unless cbow_mean, then added to
    syn0[context] for each context (once per occurrence). Float64 arrays updated in place;
    returns the loss of the step."""
    contexts = [int(j) for j in contexts]
    l1 = np.sum([syn0[j] for j in contexts], axis=0)
    if cbow_mean:
        l1 = l1 / len(contexts)
    work, loss, _, _ = _predict(l1, _step_targets(word, syn1neg, negatives, syn1, points, codes, code_lengths), alpha)
    if not cbow_mean:
        work = work / len(contexts)
    for j in contexts:
        syn0[j] += work
    return loss


def _train_jobs(
    jobs,
    total,
    syn0,
    syn1neg,
    syn1,
    sample_int,
    cum_table,
    points,
    codes,
    code_lengths,
    sg,
    negative,
    window,
    shrink_windows,
    cbow_mean,
    alpha,
    min_alpha,
    progress,
    seed,
    compute_loss,
    magnitudes,
):
    """Trains jobs [(position, [pieces: int arrays])] of a corpus of `total` positions; returns
    (effective words, loss). Weights float64, updated in place."""
    hs = points is not None
    si = None if sample_int is None else [int(s) for s in np.asarray(sample_int)]
    cum = None if negative == 0 else np.asarray(cum_table, np.int64)
    mags = None
    if magnitudes is not None:
        mags = {
            id(a): magnitudes[n] for n, a in (("syn0", syn0), ("syn1neg", syn1neg), ("syn1", syn1)) if a is not None
        }
    eff, loss, loss_mag = 0, 0.0, 0.0
    for position, pieces in jobs:
        rng = _Rng(job_state(seed, progress[0], position))
        a = job_alpha(alpha, min_alpha, progress, position, total)

        def sample(rng=rng):
            x = (rng.draw() * int(cum[-1])) >> 32
            return int(np.searchsorted(cum, x, side="right"))

        job_loss = 0.0
        for piece in pieces:
            kept = []
            for w in piece:
                w = int(w)
                if si is None:
                    kept.append(w)
                    continue
                r = rng.draw()
                if si[w] == 0xFFFFFFFF or r < si[w]:
                    kept.append(w)
            eff += len(kept)
            m = len(kept)
            for i, c in enumerate(kept):
                b = rng.draw() % window if shrink_windows else 0
                win = window - b
                ctx = [j for j in range(max(0, i - win), min(m - 1, i + win) + 1) if j != i]
                if sg:
                    for j in ctx:
                        preds = _targets(c, hs, negative, sample, syn1, points, codes, code_lengths, syn1neg)
                        l1 = syn0[kept[j]].copy()
                        l1_mag = mags[id(syn0)][kept[j]].copy() if mags is not None else 0.0
                        work, lo, wmag, lmag = _predict(l1, preds, a, mags, l1_mag)
                        syn0[kept[j]] += work
                        if mags is not None:
                            mags[id(syn0)][kept[j]] += wmag + np.abs(syn0[kept[j]])
                        job_loss += lo
                        loss_mag += lmag
                    continue
                if not ctx:
                    continue
                cnt = len(ctx)
                l1 = np.sum([syn0[kept[j]] for j in ctx], axis=0)
                l1_mag = 0.0
                if mags is not None:  # the rows' errors, and the float32 sum's: cnt roundings
                    l1_mag = np.sum([mags[id(syn0)][kept[j]] + cnt * np.abs(syn0[kept[j]]) for j in ctx], axis=0)
                if cbow_mean:
                    l1 = l1 / cnt
                    l1_mag = l1_mag / cnt + np.abs(l1)
                preds = _targets(c, hs, negative, sample, syn1, points, codes, code_lengths, syn1neg)
                work, lo, wmag, lmag = _predict(l1, preds, a, mags, l1_mag)
                if not cbow_mean:
                    work, wmag = work / cnt, wmag / cnt
                for j in ctx:
                    syn0[kept[j]] += work
                    if mags is not None:
                        mags[id(syn0)][kept[j]] += wmag + np.abs(syn0[kept[j]])
                job_loss += lo
                loss_mag += lmag
        loss += job_loss
    if magnitudes is not None:
        magnitudes["loss"] = loss_mag
    return eff, (loss if compute_loss else 0.0)


def _memory_jobs(words, ends):
    jobs, cur, count = [], None, 0
    for t in range(len(ends)):
        b, e = (int(ends[t - 1]) if t else 0), int(ends[t])
        for pb in range(b, e, MAX_SENTENCE):
            piece = words[pb : min(e, pb + MAX_SENTENCE)]
            if cur is not None and count + len(piece) > MAX_SENTENCE:
                jobs.append(cur)
                cur = None
            if cur is None:
                cur, count = (pb, []), 0
            cur[1].append(piece)
            count += len(piece)
    if cur is not None:
        jobs.append(cur)
    return jobs


def _run(jobs, total, syn0, syn1neg, syn1, options, magnitudes):
    """The weights as float64 (written back into non-float64 arrays at the end), then _train_jobs."""
    given = {"syn0": syn0, "syn1neg": syn1neg, "syn1": syn1}
    w64 = {n: _f64(a) for n, a in given.items()}
    if magnitudes is not None:
        for n, a in w64.items():
            if a is not None:
                magnitudes[n] = np.abs(a).copy()
    eff, loss = _train_jobs(jobs, total, w64["syn0"], w64["syn1neg"], w64["syn1"], magnitudes=magnitudes, **options)
    for n, a in given.items():
        if a is not None and w64[n] is not a:
            a[...] = w64[n]
    return eff, loss


def _options(
    sample_int,
    cum_table,
    points,
    codes,
    code_lengths,
    sg,
    negative,
    window,
    shrink_windows,
    cbow_mean,
    alpha,
    min_alpha,
    progress,
    seed,
    compute_loss,
):
    if points is not None:
        points, codes, code_lengths = np.asarray(points), np.asarray(codes), np.asarray(code_lengths)
    return dict(
        sample_int=sample_int,
        cum_table=cum_table,
        points=points,
        codes=codes,
        code_lengths=code_lengths,
        sg=bool(sg),
        negative=int(negative),
        window=int(window),
        shrink_windows=bool(shrink_windows),
        cbow_mean=bool(cbow_mean),
        alpha=float(alpha),
        min_alpha=float(min_alpha),
        progress=(float(progress[0]), float(progress[1])),
        seed=int(seed),
        compute_loss=bool(compute_loss),
    )


def word2vec_train(
    syn0,
    words,
    sentence_ends,
    *,
    syn1neg=None,
    syn1=None,
    sample_int=None,
    cum_table=None,
    points=None,
    codes=None,
    code_lengths=None,
    sg=True,
    negative=5,
    window=5,
    shrink_windows=True,
    cbow_mean=True,
    alpha=0.025,
    min_alpha=0.0001,
    progress=(0.0, 1.0),
    seed=1,
    compute_loss=False,
    num_threads=None,
    magnitudes=None,
):
    """(raw_words, effective_words, loss) of training on words / sentence_ends (fastnn.ops')."""
    words = np.asarray(words, np.int64)
    ends = np.asarray(sentence_ends, np.int64)
    n = len(words)
    if n and (words.min() < 0 or words.max() >= np.shape(syn0)[0]):
        raise ValueError("fastnn.ref.word2vec_train: expected words in [0, V)")
    if len(ends) and (np.any(np.diff(ends) < 0) or ends[0] < 0 or ends[-1] != n) or (not len(ends) and n):
        raise ValueError("fastnn.ref.word2vec_train: expected sentence_ends non-decreasing, ending with N")
    opts = _options(
        sample_int,
        cum_table,
        points,
        codes,
        code_lengths,
        sg,
        negative,
        window,
        shrink_windows,
        cbow_mean,
        alpha,
        min_alpha,
        progress,
        seed,
        compute_loss,
    )
    eff, loss = _run(_memory_jobs(words, ends), n, syn0, syn1neg, syn1, opts, magnitudes)
    return n, eff, loss


def _range_start(data, k):
    size = len(data)
    if k == 0:
        return 0
    lo = k * FILE_RANGE
    if lo >= size:
        return size
    p = data.find(b"\n", lo - 1, min(lo + FILE_RANGE - 1, size))
    if p >= 0:
        return p + 1
    for q in range(lo, size):
        prev = data[q - 1]
        if prev == 10 or (prev in _SPACE and data[q] not in _SPACE):
            return q
    return size


def file_jobs(data, index):
    """The jobs [(byte position, [pieces])] of a file's bytes, index: token bytes -> row; and its
    in-vocabulary tokens."""
    jobs, raw = [], 0
    nranges = -(-len(data) // FILE_RANGE)
    for k in range(nranges):
        s, e = _range_start(data, k), _range_start(data, k + 1)
        if s >= e:
            continue
        cur, count = None, 0

        def add(piece, pos):
            nonlocal cur, count
            if cur is not None and count + len(piece) > MAX_SENTENCE:
                jobs.append(cur)
                cur = None
            if cur is None:
                cur, count = (pos, []), 0
            cur[1].append(np.array(piece, np.int64))
            count += len(piece)

        line_start = s
        for line in data[s:e].split(b"\n"):
            piece, pos = [], line_start
            for m in _TOKEN.finditer(line):
                w = index.get(m.group())
                if w is None:
                    continue
                raw += 1
                if not piece and pos is None:
                    pos = line_start + m.start()
                piece.append(w)
                if len(piece) == MAX_SENTENCE:
                    add(piece, pos)
                    piece, pos = [], None
            if piece:
                add(piece, pos)
            line_start += len(line) + 1
        if cur is not None:
            jobs.append(cur)
    return jobs, raw


def _vocab_bytes(vocab):
    return [w.encode("utf-8", "surrogateescape") if isinstance(w, str) else bytes(w) for w in vocab]


def word2vec_train_file(
    syn0,
    path,
    vocab,
    *,
    syn1neg=None,
    syn1=None,
    sample_int=None,
    cum_table=None,
    points=None,
    codes=None,
    code_lengths=None,
    sg=True,
    negative=5,
    window=5,
    shrink_windows=True,
    cbow_mean=True,
    alpha=0.025,
    min_alpha=0.0001,
    progress=(0.0, 1.0),
    seed=1,
    compute_loss=False,
    num_threads=None,
    magnitudes=None,
):
    """(raw_words, effective_words, loss) of training on the text file at path (fastnn.ops')."""
    with open(path, "rb") as f:
        data = f.read()
    index = {w: i for i, w in enumerate(_vocab_bytes(vocab))}
    jobs, raw = file_jobs(data, index)
    opts = _options(
        sample_int,
        cum_table,
        points,
        codes,
        code_lengths,
        sg,
        negative,
        window,
        shrink_windows,
        cbow_mean,
        alpha,
        min_alpha,
        progress,
        seed,
        compute_loss,
    )
    eff, loss = _run(jobs, max(len(data), 1), syn0, syn1neg, syn1, opts, magnitudes)
    return raw, eff, loss


def word2vec_count_file(path, *, num_threads=None):
    """(words in order of first occurrence, their counts int64, tokens, lines) of a text file."""
    with open(path, "rb") as f:
        data = f.read()
    counts = {}
    for t in data.split():
        counts[t] = counts.get(t, 0) + 1
    words = [w.decode("utf-8", "surrogateescape") for w in counts]
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return words, np.array(list(counts.values()), np.int64), sum(counts.values()), lines
