"""fastnn.text.Word2Vec: the vocabulary's formulas, the seed program, training that learns,
determinism, the file path, persistence, bad input, and gensim's vocabulary when it is
importable. The kernels themselves: tests/test_word2vec_kernel.py."""

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from fastnn.text import LineSentence, Word2Vec, negative_sampling_loss, simple_preprocess
from fastnn.text import vocab as V


def _topic_corpus(n_sent=400, seed=0, length=12):
    """Sentences drawn from one of three disjoint word groups each, plus shared filler words:
    a word's neighbours should be its own group."""
    rng = np.random.default_rng(seed)
    groups = [[f"{g}{i}" for i in range(8)] for g in ("red", "cat", "sun")]
    filler = ["the", "a", "of", "and"]
    out = []
    for _ in range(n_sent):
        g = groups[rng.integers(3)]
        out.append([g[rng.integers(8)] if rng.random() < 0.75 else filler[rng.integers(4)] for _ in range(length)])
    return out, groups


# -- the vocabulary's formulas ------------------------------------------------------------------


def test_sample_ints_follow_the_formula():
    counts = np.array([1000, 300, 50, 7, 1])
    for sample in (1e-3, 1e-2, 0.3):
        si, kept = V.sample_ints(counts, sample)
        t = sample * counts.sum()
        p = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)
        np.testing.assert_array_equal(si, (p * (2**32 - 1)).astype(np.uint32))
        assert kept == pytest.approx((p * counts).sum())
    si, kept = V.sample_ints(counts, 0)  # off: everything kept
    assert (si == 2**32 - 1).all() and kept == counts.sum()


def test_cum_table_gives_unigram_power_probabilities():
    counts = np.array([50, 20, 9, 1, 1])
    table = V.cum_table(counts, 0.75)
    assert table.dtype == np.uint32 and table[-1] == V.CUM_DOMAIN
    w = counts**0.75
    np.testing.assert_allclose(
        np.diff(np.concatenate([[0], table.astype(np.float64)])) / V.CUM_DOMAIN, w / w.sum(), atol=1e-9
    )
    uniform = V.cum_table(counts, 0.0)
    np.testing.assert_allclose(np.diff(np.concatenate([[0], uniform.astype(np.float64)])), V.CUM_DOMAIN / 5, atol=1)


def _tree_cost(counts):
    heap = sorted(counts)
    import heapq

    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


@pytest.mark.parametrize("counts", [[5, 5], [9, 3, 3, 1], [1] * 17, [100, 40, 40, 20, 7, 7, 7, 3, 2, 1, 1]])
def test_huffman_is_an_optimal_prefix_code(counts):
    points, codes, lengths = V.huffman(counts)
    n = len(counts)
    assert points.shape[0] == codes.shape[0] == lengths.shape[0] == n
    words = [tuple(codes[w, : lengths[w]]) for w in range(n)]
    for i in range(n):  # prefix-free: no code starts another
        for j in range(n):
            if i != j:
                assert words[j][: len(words[i])] != words[i]
    # the root is inner node n - 2, every path starts there and stays inside [0, n - 1)
    assert all(points[w, 0] == n - 2 for w in range(n))
    assert points.max() < n - 1
    # the same inner node always branches the same way to the same child: a consistent tree
    assert int((np.asarray(counts) * lengths).sum()) == _tree_cost(counts)


def test_count_words_prunes_past_max_vocab_size():
    sents = [["a", "b"], ["c"], ["a", "d"], ["e"], ["a"]]
    counts, n, total = V.count_words(sents)
    assert counts == Counter({"a": 3, "b": 1, "c": 1, "d": 1, "e": 1}) and n == 5 and total == 7
    counts, _, _ = V.count_words(sents, max_vocab_size=2)
    assert "a" in counts and len(counts) <= 3


def test_simple_preprocess():
    assert simple_preprocess("Hello, World! It's 2024 ok_x a") == ["hello", "world", "it", "ok"]
    assert simple_preprocess("I am", min_len=1) == ["i", "am"]
    assert simple_preprocess("café", deacc=True) == ["cafe"]


# -- the model ------------------------------------------------------------------------------------


def test_the_seed_program_runs_and_splits_strings_once():
    sentences = ["the quick brown fox jumps over the lazy dog", "the dog sleeps", "a fox runs over a dog"] * 20
    with pytest.warns(UserWarning, match="split on whitespace") as rec:
        model = Word2Vec(sentences, vector_size=100, window=5, min_count=1, workers=4)
    assert len(rec) == 1
    assert "fox" in model.wv and "t" not in model.wv  # words, not characters
    assert model.wv["fox"].shape == (100,) and np.isfinite(model.wv.vectors).all()
    assert model.corpus_count == 60 and model.corpus_total_words == 20 * (9 + 3 + 6)


@pytest.mark.parametrize("sg", [0, 1])
@pytest.mark.parametrize("hs,negative", [(0, 5), (1, 0)])
def test_training_learns_the_topics(sg, hs, negative):
    corpus, groups = _topic_corpus()
    model = Word2Vec(
        corpus, vector_size=24, window=4, min_count=1, sg=sg, hs=hs, negative=negative, epochs=15, workers=1, seed=3
    )
    hits = 0
    for g in groups:
        for w in g[:3]:
            top = [k for k, _ in model.wv.most_similar(w, topn=5)]
            hits += sum(t in g for t in top)
    assert hits >= 0.8 * 3 * 3 * 5, hits


def test_one_worker_is_deterministic_and_the_seed_matters():
    corpus, _ = _topic_corpus(200)
    kw = dict(vector_size=16, window=3, min_count=1, epochs=3, workers=1)
    a = Word2Vec(corpus, seed=7, **kw)
    b = Word2Vec(corpus, seed=7, **kw)
    c = Word2Vec(corpus, seed=8, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    np.testing.assert_array_equal(a.syn1neg, b.syn1neg)
    assert not np.array_equal(a.wv.vectors, c.wv.vectors)


def test_two_workers_train_as_well():
    corpus, groups = _topic_corpus(600)
    m = Word2Vec(corpus, vector_size=24, window=4, min_count=1, epochs=10, workers=2, seed=1)
    assert np.isfinite(m.wv.vectors).all()
    top = [k for k, _ in m.wv.most_similar(groups[0][0], topn=5)]
    assert sum(t in groups[0] for t in top) >= 4


def test_compute_loss_falls_over_epochs():
    corpus, _ = _topic_corpus(300)
    m = Word2Vec(vector_size=16, window=3, min_count=1, workers=1, sg=1)
    m.build_vocab(corpus)
    losses = []
    for _ in range(4):
        m.train(corpus, total_examples=m.corpus_count, epochs=1, compute_loss=True)
        losses.append(m.get_latest_training_loss())
    assert all(x > 0 for x in losses) and losses[-1] < losses[0]


def test_learning_rate_endpoints_matter():
    corpus, _ = _topic_corpus(100)
    frozen = Word2Vec(vector_size=8, min_count=1, workers=1, alpha=0.0, min_alpha=0.0)
    frozen.build_vocab(corpus)
    before = frozen.wv.vectors.copy()
    frozen.train(corpus, total_examples=frozen.corpus_count, epochs=2)
    np.testing.assert_array_equal(frozen.wv.vectors, before)  # a zero rate changes nothing
    assert not frozen.syn1neg.any()


def test_corpus_file_builds_the_same_vocabulary_and_learns(tmp_path):
    corpus, groups = _topic_corpus(500)
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in corpus) + "\n", encoding="utf-8")
    a = Word2Vec(corpus_file=str(path), vector_size=24, window=4, min_count=1, epochs=12, workers=1, seed=2)
    b = Word2Vec(LineSentence(path), vector_size=24, window=4, min_count=1, epochs=1, workers=1, seed=2)
    assert a.wv.index_to_key == b.wv.index_to_key
    assert a.corpus_count == b.corpus_count == 500 and a.corpus_total_words == b.corpus_total_words
    top = [k for k, _ in a.wv.most_similar(groups[1][0], topn=5)]
    assert sum(t in groups[1] for t in top) >= 4


def test_save_and_load_round_trip(tmp_path):
    corpus, _ = _topic_corpus(100)
    for hs, neg in ((0, 5), (1, 0)):
        m = Word2Vec(corpus, vector_size=12, min_count=1, hs=hs, negative=neg, workers=1, epochs=2)
        f = tmp_path / f"m{hs}.npz"
        m.save(f)
        r = Word2Vec.load(f)
        assert r.wv.index_to_key == m.wv.index_to_key
        np.testing.assert_array_equal(r.wv.vectors, m.wv.vectors)
        np.testing.assert_array_equal(r.syn1neg, m.syn1neg)
        np.testing.assert_array_equal(r.syn1, m.syn1)
        assert r.wv.get_vecattr("the", "count") == m.wv.get_vecattr("the", "count")
        assert (r.sg, r.hs, r.negative, r.window, r.epochs) == (m.sg, m.hs, m.negative, m.window, m.epochs)
        r.train(corpus, total_examples=r.corpus_count, epochs=1)  # a loaded model trains on
        assert np.isfinite(r.wv.vectors).all()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="Word2Vec.load"):
        Word2Vec.load(bad)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="no header"):
        Word2Vec.load(tmp_path / "other.npz")


def test_bad_input():
    corpus, _ = _topic_corpus(20)
    with pytest.raises(TypeError, match="iterable"):
        Word2Vec(42)
    with pytest.raises(TypeError, match="single str"):
        Word2Vec("just one string")
    with pytest.raises(TypeError, match="sentence 1 is a int"):
        Word2Vec([["a", "b"], 7], min_count=1)
    with pytest.raises(TypeError, match="int token"):
        Word2Vec([["a", 3]], min_count=1)
    with pytest.raises(TypeError, match="generator"):
        Word2Vec(s for s in corpus)
    with pytest.raises(RuntimeError, match="build vocabulary"):
        Word2Vec([], min_count=1)
    with pytest.raises(RuntimeError, match="build vocabulary"):
        Word2Vec([["a", "b"]], min_count=5)  # min_count above every count: nothing to train
    with pytest.raises(ValueError, match="vector_size must be positive, got 0"):
        Word2Vec(corpus, vector_size=0)
    with pytest.raises(ValueError, match="either 'hs' or 'negative'"):
        Word2Vec(corpus, min_count=1, hs=0, negative=0)
    m = Word2Vec(vector_size=8, min_count=1)
    m.build_vocab(corpus)
    with pytest.raises(ValueError, match="total_examples or total_words"):
        m.train(corpus, epochs=1)
    with pytest.raises(ValueError, match="explicit epochs"):
        m.train(corpus, total_examples=m.corpus_count)
    with pytest.raises(TypeError, match="valid path"):
        Word2Vec(corpus_file="/nonexistent/corpus.txt")
    with pytest.raises(KeyError, match="nosuchword"):
        m.wv.most_similar("nosuchword")


def test_negative_sampling_loss_prefers_a_trained_model():
    corpus, _ = _topic_corpus(400)
    held, train = corpus[:50], corpus[50:]
    m = Word2Vec(vector_size=16, window=4, min_count=1, sg=1, workers=1, epochs=1)
    m.build_vocab(train)
    counts = [m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key]

    def loss():
        return negative_sampling_loss(
            m.wv.vectors, m.syn1neg, m.wv.key_to_index, held, m.wv.index_to_key, counts, window=4, seed=0
        )

    untrained = loss()
    assert untrained == pytest.approx(6 * math.log(2), rel=1e-3)  # zero output weights: log 2 per term
    m.train(train, total_examples=len(train), epochs=10)
    assert loss() < 0.8 * untrained


# -- against gensim -------------------------------------------------------------------------------


def test_vocabulary_and_tables_match_gensim():
    gensim_models = pytest.importorskip("gensim.models")
    from fastnn.text import tinyshakespeare_sentences

    sents = tinyshakespeare_sentences()[:2000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = gensim_models.Word2Vec(vector_size=8, min_count=3, sample=1e-3, hs=1, negative=5)
        g.build_vocab(sents)
    m = Word2Vec(vector_size=8, min_count=3, sample=1e-3, hs=1, negative=5)
    m.build_vocab(sents)
    assert (m.corpus_count, m.corpus_total_words) == (g.corpus_count, g.corpus_total_words)
    assert set(m.wv.index_to_key) == set(g.wv.index_to_key)
    gc = {w: g.wv.get_vecattr(w, "count") for w in g.wv.index_to_key}
    assert all(m.wv.get_vecattr(w, "count") == gc[w] for w in m.wv.index_to_key)
    counts = [gc[w] for w in m.wv.index_to_key]
    assert [counts[i] for i in range(len(counts))] == sorted(counts, reverse=True)
    # same thresholds per word, and the same table when the rows are in gensim's order
    gs = {w: g.wv.get_vecattr(w, "sample_int") for w in g.wv.index_to_key}
    assert all(int(m._sample_int[i]) == gs[w] for i, w in enumerate(m.wv.index_to_key))
    gcounts = [gc[w] for w in g.wv.index_to_key]
    np.testing.assert_array_equal(V.cum_table(gcounts), np.asarray(g.cum_table, np.uint32))
    # the same optimal tree cost
    glen = np.array([len(g.wv.get_vecattr(w, "code")) for w in g.wv.index_to_key])
    mlen = m._hs_tree[2]
    assert int((np.array(gcounts) * glen).sum()) == int((np.array(counts) * mlen).sum())


def test_logging_callbacks_and_vocabulary_options(caplog, tmp_path):
    import logging

    corpus, _ = _topic_corpus(100)
    events = []

    class Recorder:
        def on_train_begin(self, model):
            events.append("train")

        def on_epoch_end(self, model):
            events.append("epoch")

    with caplog.at_level(logging.INFO, logger="fastnn.text.word2vec"):
        m = Word2Vec(corpus, vector_size=8, min_count=1, epochs=3, workers=1, callbacks=[Recorder()])
    assert events == ["train", "epoch", "epoch", "epoch"]
    assert sum("effective words/s" in r.getMessage() for r in caplog.records) == 3
    # trim_rule keeps or discards whatever min_count says; max_final_vocab raises min_count
    keep_the = Word2Vec(min_count=10**6, vector_size=4)
    keep_the.build_vocab(corpus, trim_rule=lambda w, c, mc: V.RULE_KEEP if w == "the" else V.RULE_DEFAULT)
    assert keep_the.wv.index_to_key == ["the"]
    capped = Word2Vec(min_count=1, vector_size=4, max_final_vocab=5)
    capped.build_vocab(corpus)
    assert 0 < len(capped.wv) <= 5 and capped.effective_min_count > 1
    freq = Word2Vec(min_count=2, vector_size=4)
    freq.build_vocab_from_freq({"a": 5, "b": 1, "c": 3})
    assert freq.wv.index_to_key == ["a", "c"] and freq.wv.get_vecattr("c", "count") == 3
    # a long line is cut into pieces of max_sentence_length words
    f = tmp_path / "long.txt"
    f.write_text(" ".join(["w"] * 25) + "\nx y\n", encoding="utf-8")
    assert [len(s) for s in LineSentence(f, max_sentence_length=10)] == [10, 10, 5, 2]
    assert len(m.wv) == len(set(w for s in corpus for w in s))
