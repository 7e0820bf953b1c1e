"""The word2vec training kernels (fastnn.ops.word2vec_train / _train_file / _count_file) on every
ISA against the float64 reference of fastnn.ref.word2vec, which mirrors their jobs, learning
rates and random draws (csrc/ops/word2vec.h); the reference's update against finite differences
of the loss; repeatability; the file entries; threads; bad input."""

import collections
import heapq

import numpy as np
import pytest
from conftest import ISAS
from fastnn import _core, ops, ref
from fastnn.ref import word2vec as rw
from fastnn.ref.rounding import U32

MODES = [(sg, obj) for sg in (True, False) for obj in ("ns", "hs", "both")]
DIMS = [1, 7, 8, 15, 16, 17, 33, 100]


def huffman(counts):
    """gensim's Huffman tree of word counts: points (V, L) int32 (inner nodes 0 .. V - 2 from the
    root), codes (V, L) uint8, code_lengths (V,) int32."""
    v = len(counts)
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent, bit, nxt = {}, {}, v
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a], bit[a], parent[b], bit[b] = nxt, 0, nxt, 1
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    paths = []
    for w in range(v):
        pts, cds, node = [], [], w
        while node in parent:
            pts.append(parent[node] - v)
            cds.append(bit[node])
            node = parent[node]
        paths.append((pts[::-1], cds[::-1]))
    length = max(1, max(len(p) for p, _ in paths))
    points = np.zeros((v, length), np.int32)
    codes = np.zeros((v, length), np.uint8)
    lengths = np.zeros(v, np.int32)
    for w, (p, c) in enumerate(paths):
        points[w, : len(p)], codes[w, : len(c)], lengths[w] = p, c, len(p)
    # the paths of (root - V) = V - 2 inner nodes: the rows of syn1 that are used
    return points, codes, lengths


class Model:
    """Weights and tables for V words of D dims: syn0 as gensim initialises it, syn1neg / syn1
    small random values (so that the dots are not all 0 from the start), a cum_table of
    counts^0.75 and the Huffman tree of the counts."""

    def __init__(self, rng, v, d, hs=False, ns=True, sample=False):
        counts = np.sort(rng.zipf(1.5, v).clip(1, 10**6))[::-1].astype(np.int64)
        self.counts = counts
        self.syn0 = ((rng.random((v, d)) - 0.5) / d).astype(np.float32)
        self.kw = {}
        if ns:
            self.kw["syn1neg"] = (rng.standard_normal((v, d)) * 0.3).astype(np.float32)
            c = np.cumsum(counts**0.75)
            self.kw["cum_table"] = np.round(c / c[-1] * (2**31 - 1)).astype(np.uint32)
        if hs:
            points, codes, lengths = huffman(counts)
            self.kw.update(points=points, codes=codes, code_lengths=lengths)
            self.kw["syn1"] = (rng.standard_normal((max(v - 1, 1), d)) * 0.3).astype(np.float32)
        if sample:  # about half the words always kept, the others with probability in (0.3, 1)
            si = (rng.uniform(0.3, 1.0, v) * 2**32).astype(np.uint32)
            si[rng.random(v) < 0.5] = 0xFFFFFFFF
            self.kw["sample_int"] = si

    def weights(self):
        return {"syn0": self.syn0, **{k: self.kw[k] for k in ("syn1neg", "syn1") if k in self.kw}}

    def copies(self, dtype):
        """(syn0, the other keyword arguments) with the weights copied as dtype."""
        kw = {k: (np.array(v, dtype) if k in ("syn1neg", "syn1") else v) for k, v in self.kw.items()}
        return np.array(self.syn0, dtype), kw


def corpus(rng, v, n, sentences, empty=True):
    """n words drawn Zipf-like from [0, v) cut into sentences (some empty)."""
    p = 1.0 / np.arange(1, v + 1)
    words = rng.choice(v, n, p=p / p.sum()).astype(np.int32)
    cuts = np.sort(rng.integers(0, n + 1, sentences - 1)) if sentences > 1 else np.zeros(0, np.int64)
    if empty and sentences > 2:
        cuts[sentences // 2] = cuts[sentences // 2 - 1]
    return words, np.append(cuts, n).astype(np.int64)


def n_predictions(kw, negative):
    """The most predictions one update makes (the terms its work sums)."""
    return (negative + 1 if negative else 0) + (kw["points"].shape[1] if "points" in kw else 0)


def check_against_reference(model, words, ends, isas, **options):
    """The kernel on each ISA (one thread) against the reference on the same arguments.

    Bound: every float32 rounding errs by at most u |its result|. The reference's magnitudes M
    (fastnn.ref.word2vec._predict) add, per update of an element, |its new value| (that update's
    rounding), |the update's term| (computed with g within ~10 u of exact: the sigmoid within 4
    ulps = 8 u, alpha's rounding and the product; work sums up to n_pred terms, n_pred roundings,
    before an input row adds it), the errors carried in from the operands (|g| M of l1 or u), and
    |x| alpha sigmoid'(f) times f's error (the float32 dot, D |l1|.|u|, and the operands', |u|.M_l1 +
    |l1|.M_u); CBOW's l1 adds the rows' M and its sum's cnt roundings. By induction over the
    updates (to first order in u) every element stays within C u M of the exact value with
    C = 12 + n_pred. The loss: each term within 8 u (log1p of an exp within 4 ulps) plus f's
    error, which the loss's M holds."""
    syn0, kw = model.copies(np.float64)
    mags = {}
    want = ref.word2vec_train(syn0, words, ends, magnitudes=mags, **kw, **options)
    ref_w = {"syn0": syn0, **{k: kw[k] for k in ("syn1neg", "syn1") if k in kw}}
    c = 12 + n_predictions(model.kw, options.get("negative", 5))
    for isa in isas:
        syn0_k, kw_k = model.copies(np.float32)
        got = _core.word2vec_train(syn0_k, words, ends, num_threads=1, isa=isa, **kw_k, **options)
        assert got[:2] == want[:2], (isa, got, want)
        got_w = {"syn0": syn0_k, **{k: kw_k[k] for k in ("syn1neg", "syn1") if k in kw_k}}
        for name, w in ref_w.items():
            err = np.abs(got_w[name] - w)
            bound = c * U32 * mags[name]
            assert (err <= bound).all(), (isa, name, float((err / bound).max()))
        if options.get("compute_loss"):
            assert abs(got[2] - want[2]) <= c * U32 * mags["loss"], (isa, got[2], want[2])
        else:
            assert got[2] == 0.0
    return want


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("sg,objective", MODES)
def test_against_reference(rng, d, sg, objective):
    # the variants cycle over the cases: CBOW mean/sum, window shrinking and subsampling on/off
    k = DIMS.index(d) + MODES.index((sg, objective))
    model = Model(rng, int(rng.integers(20, 51)), d, hs=objective != "ns", ns=objective != "hs", sample=k % 2 == 0)
    words, ends = corpus(rng, len(model.counts), 150, 6)
    check_against_reference(
        model,
        words,
        ends,
        ISAS,
        sg=sg,
        negative=0 if objective == "hs" else 3,
        window=3,
        cbow_mean=k % 4 < 2,
        shrink_windows=k % 3 != 0,
        alpha=0.05,
        min_alpha=0.01,
        progress=(0.25, 0.75),
        seed=int(rng.integers(0, 2**63)),
        compute_loss=True,
    )


@pytest.mark.parametrize("sg", [True, False])
@pytest.mark.parametrize("cbow_mean,shrink,sample", [(True, True, True), (False, False, False), (True, False, True)])
def test_flags_against_reference(rng, sg, cbow_mean, shrink, sample):
    model = Model(rng, 30, 9, hs=True, ns=True, sample=sample)
    words, ends = corpus(rng, 30, 120, 4)
    check_against_reference(
        model,
        words,
        ends,
        ISAS,
        sg=sg,
        negative=4,
        window=4,
        cbow_mean=cbow_mean,
        shrink_windows=shrink,
        compute_loss=True,
    )


def test_repeated_negatives_see_each_others_updates(rng):
    """A small vocabulary with one heavy word: the negatives repeat within an update, and each
    repeat starts a new group of predictions (the reference does them one at a time)."""
    model = Model(rng, 4, 17, hs=False, ns=True)
    model.kw["cum_table"] = np.array([100, 101, 102, 4000], np.uint32)
    words, ends = corpus(rng, 4, 80, 2)
    check_against_reference(model, words, ends, ISAS, negative=20, window=2, compute_loss=True)
    check_against_reference(model, words, ends, ISAS, sg=False, negative=20, window=2, compute_loss=True)


def test_negative_sampling_large_vocabulary(rng):
    """300000 words, runs of equal cum_table entries (words never drawn): the samples found
    through the sampler's buckets (searched per bucket for a table this large) are the
    reference's smallest t with cum_table[t] > x."""
    v = 300000
    model = Model(rng, v, 1)
    widths = rng.integers(0, 3, v) ** 3  # many zero widths
    widths[[0, v - 1]] = 1
    model.kw["cum_table"] = np.cumsum(widths).astype(np.uint32)
    words = rng.integers(0, v, 3000).astype(np.int32)
    check_against_reference(model, words, np.array([3000], np.int64), ISAS, negative=3, window=1, compute_loss=True)


def test_extreme_dots_stay_finite(rng):
    """|f| up to a few hundred: the sigmoid saturates without NaN or inf (no cut-off at 6)."""
    model = Model(rng, 20, 40, hs=True, ns=True)
    model.syn0 *= 2000
    words, ends = corpus(rng, 20, 60, 2)
    check_against_reference(model, words, ends, ISAS, negative=3, window=2, compute_loss=True)
    syn0, kw = model.copies(np.float32)
    for isa in ISAS:
        res = _core.word2vec_train(syn0, words, ends, isa=isa, compute_loss=True, **kw)
        assert np.isfinite(res[2]) and all(np.isfinite(w).all() for w in (syn0, kw["syn1neg"], kw["syn1"]))


@pytest.mark.parametrize("isa", ISAS)
def test_one_thread_repeats_bit_for_bit(rng, isa):
    model = Model(rng, 300, 20, hs=True, ns=True, sample=True)
    words, ends = corpus(rng, 300, 25000, 40)
    ends[-2] = ends[-3]  # a sentence of over 10000 words: pieces
    runs = []
    for _ in range(2):
        syn0, kw = model.copies(np.float32)
        res = _core.word2vec_train(syn0, words, ends, num_threads=1, isa=isa, compute_loss=True, seed=7, **kw)
        runs.append((res, syn0, kw["syn1neg"], kw["syn1"]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1:], runs[1][1:]):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_schedule(rng):
    """With min_alpha == alpha the rate is the same for every job and progress's p1 changes
    nothing (p0 seeds the draws); otherwise it does. A multi-job corpus (pieces of a sentence
    over 10000 words, many jobs, heavy subsampling to keep the reference fast) against the
    reference, whose job positions and rates are the contract's."""
    model = Model(rng, 40, 3, sample=True)
    model.kw["sample_int"] = np.full(40, 2**32 // 60, np.uint32)  # about 1 word in 60 kept
    words, _ = corpus(rng, 40, 34000, 1)
    # a sentence of 12400 words (a piece of 10000 and one of 2400), one of 14000
    ends = np.array([100, 12500, 12600, 20000, 34000], np.int64)

    def run(**o):
        syn0, kw = model.copies(np.float32)
        res = _core.word2vec_train(syn0, words, ends, num_threads=1, negative=2, window=2, **kw, **o)
        return res, syn0

    a = run(alpha=0.03, min_alpha=0.03, progress=(0.3, 0.5))
    b = run(alpha=0.03, min_alpha=0.03, progress=(0.3, 0.9))
    np.testing.assert_array_equal(a[1], b[1])
    c = run(alpha=0.03, min_alpha=0.001, progress=(0.3, 0.9))
    assert not np.array_equal(a[1], c[1])
    d = run(alpha=0.03, min_alpha=0.03, progress=(0.4, 0.9))
    assert not np.array_equal(a[1], d[1])  # another p0: other draws
    assert a[0][:2] == b[0][:2] == c[0][:2]
    for progress in ((0.0, 1.0), (0.2, 0.7), (1.0, 1.0)):
        check_against_reference(
            model,
            words,
            ends,
            ISAS,
            negative=2,
            window=2,
            alpha=0.1,
            min_alpha=0.001,
            progress=progress,
            compute_loss=True,
        )
    # the jobs: greedy up to 10000 words, a long sentence in pieces
    jobs = rw._memory_jobs(words, ends)
    assert [j[0] for j in jobs] == [0, 100, 10100, 20000, 30000]
    assert [sum(len(p) for p in j[1]) for j in jobs] == [100, 10000, 9900, 10000, 4000]


# ---------------------------------------------------------------------------------------------
# The reference's update is a gradient step of the loss


def _step_loss(sg, cbow_mean, syn0, syn1neg, syn1, context, word, negatives, hs):
    """The loss of one step's predictions as a function of the weights (float64)."""
    if sg:
        l1 = syn0[context]
    else:
        l1 = np.sum([syn0[j] for j in context], axis=0)
        if cbow_mean:
            l1 = l1 / len(context)
    loss = 0.0
    if hs is not None:
        points, codes, lengths = hs
        for k in range(lengths[word]):
            f = l1 @ syn1[points[word, k]]
            loss += np.logaddexp(0, -f if codes[word, k] == 0 else f)
    loss += np.logaddexp(0, -(l1 @ syn1neg[word]))
    for t in negatives:
        if t != word:
            loss += np.logaddexp(0, l1 @ syn1neg[t])
    return loss


@pytest.mark.parametrize("sg,cbow_mean", [(True, True), (False, True), (False, False)])
def test_step_is_a_gradient_step(rng, sg, cbow_mean):
    """One reference step moves each output row by -alpha times the loss's gradient, syn0's
    context row(s) by -alpha times the gradient with respect to l1 (CBOW: that is cnt times the
    gradient of each context row with the mean, 1 / cnt times it with the sum), checked with
    float64 central differences."""
    v, d, alpha = 12, 5, 0.1
    syn0 = rng.standard_normal((v, d)) * 0.5
    syn1neg = rng.standard_normal((v, d)) * 0.5
    points, codes, lengths = huffman(rng.integers(1, 50, v))
    syn1 = rng.standard_normal((v - 1, d)) * 0.5
    word, negatives = 3, [5, 7, 3, 9]  # 3 == word: skipped
    context = 6 if sg else [1, 6, 8]
    hs = (points, codes, lengths)
    a0, a1, a2 = syn0.copy(), syn1neg.copy(), syn1.copy()
    step_kw = dict(syn1neg=a1, negatives=negatives, syn1=a2, points=points, codes=codes, code_lengths=lengths)
    if sg:
        loss = ref.word2vec_sg_step(a0, context, word, alpha, **step_kw)
    else:
        loss = ref.word2vec_cbow_step(a0, context, word, alpha, cbow_mean=cbow_mean, **step_kw)
    assert loss == pytest.approx(_step_loss(sg, cbow_mean, syn0, syn1neg, syn1, context, word, negatives, hs))
    h = 1e-6
    for name, base, moved in (("syn0", syn0, a0), ("syn1neg", syn1neg, a1), ("syn1", syn1, a2)):
        grad = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            args = {"syn0": syn0, "syn1neg": syn1neg, "syn1": syn1}
            plus, minus = base.copy(), base.copy()
            plus[idx] += h
            minus[idx] -= h
            lp = _step_loss(
                sg, cbow_mean, **{**args, name: plus}, context=context, word=word, negatives=negatives, hs=hs
            )
            lm = _step_loss(
                sg, cbow_mean, **{**args, name: minus}, context=context, word=word, negatives=negatives, hs=hs
            )
            grad[idx] = (lp - lm) / (2 * h)
        scale = 1.0
        if name == "syn0" and not sg:
            scale = len(context) if cbow_mean else 1.0 / len(context)
        np.testing.assert_allclose(moved - base, -alpha * scale * grad, rtol=1e-6, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Files


def write_corpus(path, lines):
    path.write_bytes(b"".join(lines))
    return str(path)


def vocab_of(v):
    return [f"w{i}" for i in range(v)]


@pytest.mark.parametrize("sg,objective", MODES)
def test_file_equals_memory(rng, tmp_path, sg, objective):
    """A file of one job trains as the same sentences in memory, bit for bit (the first line
    holds a word: the job starts at position 0 in both)."""
    v = 25
    model = Model(rng, v, 17, hs=objective != "ns", ns=objective != "hs", sample=True)
    vocab = vocab_of(v)
    lines, words, ends = [], [], []
    for i in range(60):
        toks = [
            vocab[int(w)] if rng.random() < 0.85 else "oov" + str(i) for w in rng.integers(0, v, rng.integers(0, 12))
        ]
        if i == 0:
            toks = [vocab[1]] + toks
        words += [int(t[1:]) for t in toks if t.startswith("w")]
        ends.append(len(words))
        sep = [" ", "\t", "  ", " \r"][i % 4]
        lines.append((sep.join(toks) + ("\r\n" if i % 7 == 3 else "\n")).encode())
    path = write_corpus(tmp_path / "c.txt", lines)
    words, ends = np.array(words, np.int32), np.array(ends, np.int64)
    opts = dict(
        sg=sg,
        negative=0 if objective == "hs" else 3,
        window=3,
        alpha=0.05,
        min_alpha=0.001,
        progress=(0.1, 0.6),
        seed=5,
        compute_loss=True,
    )
    for isa in ISAS:
        s_mem, kw_mem = model.copies(np.float32)
        s_file, kw_file = model.copies(np.float32)
        r_mem = _core.word2vec_train(s_mem, words, ends, num_threads=1, isa=isa, **kw_mem, **opts)
        r_file = _core.word2vec_train_file(s_file, path, vocab, num_threads=1, isa=isa, **kw_file, **opts)
        assert r_mem == r_file
        np.testing.assert_array_equal(s_mem, s_file)
        for k in ("syn1neg", "syn1"):
            if k in kw_mem:
                np.testing.assert_array_equal(kw_mem[k], kw_file[k])


def test_file_ranges_against_reference(rng, tmp_path):
    """A file of several 64 KiB ranges: short lines, lines longer than a range (cut where a range
    begins within them), a line of over 10000 words (pieces), out-of-vocabulary filler, a token
    across the reader's chunks: the kernel against the reference's reading of the contract."""
    v = 30
    vocab = vocab_of(v)
    model = Model(rng, v, 4, sample=True)
    model.kw["sample_int"] = np.full(v, 2**32 // 40, np.uint32)  # keeps the reference quick
    chunks = []
    for _ in range(40):  # short lines
        chunks.append(" ".join(rng.choice(vocab + ["xx", "yy"], int(rng.integers(0, 30)))) + "\n")
    long_line = " ".join(rng.choice(vocab + ["filler"] * 20, 30000))  # ~ 200 KB, one line
    chunks.append(long_line + "\n")
    chunks.append(" ".join(rng.choice(vocab, 12000)) + "\n")  # > 10000 in-vocabulary words
    chunks.append("\n\n" + "z" * 70000 + " w1 w2\n")  # a token over a chunk, a range inside it
    for i in range(30):
        chunks.append("\t".join(rng.choice(vocab + ["q"], int(rng.integers(1, 20)))) + ("\n" if i < 29 else ""))
    path = write_corpus(tmp_path / "r.txt", [c.encode() for c in chunks])
    data = (tmp_path / "r.txt").read_bytes()
    assert len(data) > 3 * rw.FILE_RANGE
    syn0, kw = model.copies(np.float64)
    mags = {}
    opts = dict(negative=2, window=2, alpha=0.05, min_alpha=0.001, progress=(0.0, 1.0), compute_loss=True)
    want = ref.word2vec_train_file(syn0, path, vocab, magnitudes=mags, **kw, **opts)
    jobs, raw = rw.file_jobs(data, {w.encode(): i for i, w in enumerate(vocab)})
    assert len(jobs) > 4 and raw == want[0]
    c = 12 + n_predictions(model.kw, 2)
    for isa in ISAS:
        syn0_k, kw_k = model.copies(np.float32)
        got = _core.word2vec_train_file(syn0_k, path, vocab, num_threads=1, isa=isa, **kw_k, **opts)
        assert got[:2] == want[:2]
        assert abs(got[2] - want[2]) <= c * U32 * mags["loss"]
        assert (np.abs(syn0_k - syn0) <= c * U32 * mags["syn0"]).all()
        assert (np.abs(kw_k["syn1neg"] - kw["syn1neg"]) <= c * U32 * mags["syn1neg"]).all()
    # more threads: the same words counted (subsampling draws depend on the job alone)
    syn0_k, kw_k = model.copies(np.float32)
    assert ops.word2vec_train_file(syn0_k, path, vocab, num_threads=3, **kw_k, **opts)[:2] == want[:2]


def test_count_file(tmp_path):
    text = (
        "the cat  sat\ton the mat\r\n"
        "\n"
        "naïve café — the end\x0bof\x0cthe line\n"
        "   \n" + "long " * 30000 + "\n" + "x" * 70000 + " tail"  # ranges, a chunk-crossing token, no final newline
    ).encode() + b" \xff\xfe bad-utf8\n\nlast"
    path = write_corpus(tmp_path / "t.txt", [text])
    counter = collections.Counter(text.split())
    first_seen = list(dict.fromkeys(text.split()))
    for nt in (1, 2, 3):
        words, counts, tokens, lines = ops.word2vec_count_file(path, num_threads=nt)
        assert [w.encode("utf-8", "surrogateescape") for w in words] == first_seen
        assert counts.dtype == np.int64 and counts.tolist() == [counter[w] for w in first_seen]
        assert tokens == sum(counter.values())
        assert lines == text.count(b"\n") + 1
    assert ops.word2vec_count_file(path)[0] == ref.word2vec_count_file(path)[0]
    # the words read back as a vocabulary: every token found
    vocab = words
    syn0 = np.zeros((len(vocab), 2), np.float32)
    c = np.cumsum(np.ones(len(vocab))).astype(np.uint32)
    res = ops.word2vec_train_file(syn0, path, vocab, syn1neg=np.zeros_like(syn0), cum_table=c, window=1, negative=1)
    assert res[0] == tokens
    empty = write_corpus(tmp_path / "e.txt", [])
    assert ops.word2vec_count_file(empty)[2:] == (0, 0)
    assert ops.word2vec_train_file(syn0, empty, vocab, syn1neg=np.zeros_like(syn0), cum_table=c) == (0, 0, 0.0)


# ---------------------------------------------------------------------------------------------
# Threads


def topic_corpus(rng, v, n, topics=10, length=12):
    """Sentences of `length` words drawn from one of `topics` disjoint word sets: context
    predicts the word, so training lowers the loss epoch after epoch."""
    groups = np.array_split(rng.permutation(v), topics)
    picks = rng.integers(0, topics, n // length)
    words = np.concatenate([rng.choice(groups[t], length) for t in picks]).astype(np.int32)
    return words, np.arange(length, len(words) + 1, length, dtype=np.int64)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("sg", [True, False])
def test_threads_train(rng, isa, sg):
    """Several threads (Hogwild): the same word counts as one thread, finite vectors, and with
    negative sampling a falling loss. (Hierarchical softmax's loss on this corpus of uniformly
    random words within topics rises again after the second epoch, gensim's too: it is only
    checked to stay finite.)"""
    words, ends = topic_corpus(rng, 200, 60000)
    for hs, ns in ((False, True), (True, True)):
        model = Model(rng, 200, 32, hs=hs, ns=ns, sample=True)
        syn0, kw = model.copies(np.float32)
        kw1 = {k: np.copy(x) for k, x in kw.items()}
        one = _core.word2vec_train(syn0.copy(), words, ends, sg=sg, num_threads=1, isa=isa, **kw1)
        losses = []
        for epoch in range(3):
            res = _core.word2vec_train(
                syn0,
                words,
                ends,
                sg=sg,
                num_threads=3,
                isa=isa,
                compute_loss=True,
                progress=(epoch / 3, (epoch + 1) / 3),
                **kw,
            )
            assert res[0] == one[0] and (epoch or res[1] == one[1])
            losses.append(res[2])
        assert all(np.isfinite(w).all() for w in [syn0] + [kw[k] for k in ("syn1neg", "syn1") if k in kw])
        assert np.isfinite(losses).all()
        if not hs:
            assert losses[2] < losses[1] < losses[0]


# ---------------------------------------------------------------------------------------------
# Bad input


class _CudaLike:
    __cuda_array_interface__ = {"shape": (2, 2), "typestr": "<f4", "data": (0, False), "version": 3}


def _valid(rng):
    model = Model(rng, 10, 4, hs=True, ns=True, sample=True)
    words, ends = corpus(rng, 10, 30, 3)
    return dict(syn0=model.syn0.copy(), words=words, sentence_ends=ends, negative=2, **model.kw)


def _overlapping(kw):
    buf = np.zeros((20, 4), np.float32)
    return dict(kw, syn0=buf[:10], syn1neg=buf[5:15])


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD = [
    ("syn0 read-only", lambda k: dict(k, syn0=_readonly(k["syn0"])), ValueError, "writeable"),
    ("syn0 float64", lambda k: dict(k, syn0=k["syn0"].astype(np.float64)), TypeError, "float32"),
    ("syn0 strided", lambda k: dict(k, syn0=np.repeat(k["syn0"], 2, 1)[:, ::2]), ValueError, "C-contiguous"),
    ("syn0 1-D", lambda k: dict(k, syn0=k["syn0"].reshape(-1)), ValueError, "2 dimensions"),
    ("syn0 None", lambda k: dict(k, syn0=None), TypeError, "syn0"),
    ("D = 0", lambda k: dict(k, syn0=np.zeros((10, 0), np.float32)), ValueError, "D"),
    ("syn0 / syn1neg overlap", _overlapping, ValueError, "share memory"),
    ("syn1neg is syn1", lambda k: dict(k, syn1=k["syn1neg"]), ValueError, "share memory"),
    ("words inside syn0", lambda k: dict(k, words=k["syn0"].view(np.int32).reshape(-1)[:30]), ValueError, "share"),
    (
        "word out of range",
        lambda k: dict(k, words=np.where(np.arange(30) == 7, 10, k["words"]).astype(np.int32)),
        ValueError,
        "at position 7",
    ),
    ("negative word", lambda k: dict(k, words=np.full(30, -1, np.int32)), ValueError, "at position 0"),
    ("words int64", lambda k: dict(k, words=k["words"].astype(np.int64)), TypeError, "int32"),
    ("words 2-D", lambda k: dict(k, words=k["words"].reshape(5, 6)), ValueError, "words"),
    ("ends not ending with N", lambda k: dict(k, sentence_ends=np.array([3, 29], np.int64)), ValueError, "end with"),
    ("ends decreasing", lambda k: dict(k, sentence_ends=np.array([5, 3, 30], np.int64)), ValueError, "position 1"),
    ("ends empty", lambda k: dict(k, sentence_ends=np.zeros(0, np.int64)), ValueError, "end with"),
    ("ends int32", lambda k: dict(k, sentence_ends=k["sentence_ends"].astype(np.int32)), TypeError, "int64"),
    ("cum_table decreasing", lambda k: dict(k, cum_table=k["cum_table"][::-1].copy()), ValueError, "non-decreasing"),
    ("cum_table zero", lambda k: dict(k, cum_table=np.zeros(10, np.uint32)), ValueError, "last entry"),
    ("cum_table int64", lambda k: dict(k, cum_table=k["cum_table"].astype(np.int64)), TypeError, "uint32"),
    ("cum_table short", lambda k: dict(k, cum_table=k["cum_table"][:5].copy()), ValueError, "cum_table"),
    ("no cum_table", lambda k: dict(k, cum_table=None), ValueError, "cum_table"),
    ("no syn1neg", lambda k: dict(k, syn1neg=None), ValueError, "syn1neg"),
    ("syn1neg shape", lambda k: dict(k, syn1neg=np.zeros((9, 4), np.float32)), ValueError, "syn1neg"),
    ("sample_int float", lambda k: dict(k, sample_int=k["sample_int"].astype(np.float32)), TypeError, "uint32"),
    ("hs without codes", lambda k: dict(k, codes=None), ValueError, "together"),
    ("no syn1", lambda k: dict(k, syn1=None), ValueError, "syn1"),
    ("syn1 rows", lambda k: dict(k, syn1=np.zeros((3, 4), np.float32)), ValueError, "R >= V - 1"),
    (
        "point out of range",
        lambda k: dict(k, points=np.where(k["points"] == 0, 99, k["points"]).astype(np.int32)),
        ValueError,
        "points",
    ),
    ("code 2", lambda k: dict(k, codes=(k["codes"] * 2).astype(np.uint8)), ValueError, "codes"),
    ("code length", lambda k: dict(k, code_lengths=k["code_lengths"] + 50), ValueError, "code_lengths"),
    (
        "nothing to train",
        lambda k: dict(k, negative=0, points=None, codes=None, code_lengths=None),
        ValueError,
        "nothing",
    ),
    ("negative < 0", lambda k: dict(k, negative=-1), ValueError, "negative"),
    ("negative huge", lambda k: dict(k, negative=2**31), ValueError, "negative"),
    ("window 0", lambda k: dict(k, window=0), ValueError, "window"),
    ("window huge", lambda k: dict(k, window=2**31), ValueError, "window"),
    ("window float", lambda k: dict(k, window=2.5), TypeError, "window"),
    ("alpha nan", lambda k: dict(k, alpha=float("nan")), ValueError, "alpha"),
    ("min_alpha inf", lambda k: dict(k, min_alpha=float("inf")), ValueError, "min_alpha"),
    ("progress > 1", lambda k: dict(k, progress=(0.5, 1.5)), ValueError, "progress"),
    ("progress reversed", lambda k: dict(k, progress=(0.6, 0.5)), ValueError, "progress"),
    ("progress negative", lambda k: dict(k, progress=(-0.1, 0.5)), ValueError, "progress"),
    ("progress scalar", lambda k: dict(k, progress=0.5), TypeError, "progress"),
    ("seed float", lambda k: dict(k, seed=1.5), TypeError, "seed"),
    ("num_threads 0", lambda k: dict(k, num_threads=0), ValueError, "num_threads"),
    ("CUDA array", lambda k: dict(k, syn0=_CudaLike()), TypeError, "CPU"),
]


@pytest.mark.parametrize("what,mutate,exc,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(rng, what, mutate, exc, words):
    kw = mutate(_valid(rng))
    before = {k: v.copy() for k, v in kw.items() if isinstance(v, np.ndarray)}
    with pytest.raises(exc, match=words) as e:
        ops.word2vec_train(kw.pop("syn0"), kw.pop("words"), kw.pop("sentence_ends"), **kw)
    assert "word2vec_train" in str(e.value)
    for k, v in before.items():  # refused before training: nothing written
        if k in kw:
            np.testing.assert_array_equal(kw[k], v)


def test_bad_file_input(rng, tmp_path):
    kw = _valid(rng)
    syn0 = kw.pop("syn0")
    for k in ("words", "sentence_ends"):
        kw.pop(k)
    vocab = vocab_of(10)
    path = write_corpus(tmp_path / "ok.txt", [b"w1 w2 w3\n"])
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        ops.word2vec_train_file(syn0, missing, vocab, **kw)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        ops.word2vec_count_file(missing)
    with pytest.raises(IsADirectoryError):
        ops.word2vec_count_file(str(tmp_path))
    with pytest.raises(TypeError, match="word2vec_count_file.*path"):
        ops.word2vec_count_file(3)
    with pytest.raises(ValueError, match="word2vec_count_file.*NUL"):
        ops.word2vec_count_file(path + "\0x")
    with pytest.raises(ValueError, match="word2vec_train_file.*V = 10"):
        ops.word2vec_train_file(syn0, path, vocab[:9], **kw)
    with pytest.raises(ValueError, match="repeats"):
        ops.word2vec_train_file(syn0, path, vocab[:9] + ["w1"], **kw)
    with pytest.raises(TypeError, match="list of str"):
        ops.word2vec_train_file(syn0, path, vocab[:9] + [5], **kw)
    with pytest.raises(TypeError, match="list of str"):
        ops.word2vec_train_file(syn0, path, "w1 w2", **kw)
    with pytest.raises(ValueError, match="encode as UTF-8"):
        ops.word2vec_train_file(syn0, path, vocab[:9] + ["\ud800"], **kw)
    with pytest.raises(ValueError, match="word2vec_train_file.*writeable"):
        ops.word2vec_train_file(_readonly(syn0), path, vocab, **kw)
    with pytest.raises(ValueError, match="word2vec_train_file.*non-decreasing"):
        ops.word2vec_train_file(syn0, path, vocab, **dict(kw, cum_table=kw["cum_table"][::-1].copy()))
    assert ops.word2vec_train_file(syn0, path, vocab, **kw)[0] == 3
    import pathlib

    assert ops.word2vec_train_file(syn0, pathlib.Path(path), vocab, **kw)[0] == 3
