"""fastnn.text.KeyedVectors: gensim 4's interface in NumPy.

Hand-computed similarities on a tiny vocabulary of known vectors, the analogy and word-pair
evaluations on small files, the word2vec C formats (text and binary, written and read), the
native .npz format, the correlations' p-values; and, where gensim is installed, agreement with
gensim's KeyedVectors on random vectors and on gensim's own sample files.
"""

import bz2
import gzip
import logging
import math
import os

import numpy as np
import pytest
from fastnn.text import KeyedVectors
from fastnn.text import keyedvectors as kvmod

S2 = math.sqrt(2.0)

# Five 2-D vectors whose cosines are easy to write down: a.b = 0, a.c = 0.6, a.d = -1, a.e = 1/sqrt 2.
TINY = {"a": (1, 0), "b": (0, 2), "c": (3, 4), "d": (-1, 0), "e": (1, 1)}


@pytest.fixture
def tiny():
    kv = KeyedVectors(2)
    kv.add_vectors(list(TINY), np.array(list(TINY.values()), dtype=np.float32))
    return kv


def names(result):
    return [key for key, _ in result]


def sims(result):
    return np.array([sim for _, sim in result])


# -- container basics ------------------------------------------------------------------------


def test_keys_vectors_and_lookup(tiny):
    assert tiny.norms is None  # computed on first use
    assert len(tiny) == 5 and tiny.vector_size == 2 and tiny.vectors.shape == (5, 2)
    assert tiny.index_to_key == list(TINY) and tiny.key_to_index == {k: i for i, k in enumerate(TINY)}
    assert "c" in tiny and "z" not in tiny and tiny.has_index_for("c") and not tiny.has_index_for("z")
    np.testing.assert_array_equal(tiny["c"], [3, 4])
    np.testing.assert_array_equal(tiny[["a", "c"]], [[1, 0], [3, 4]])
    assert tiny[[]].shape == (0, 2)
    assert not tiny["c"].flags.writeable
    np.testing.assert_allclose(tiny.get_vector("c", norm=True), [0.6, 0.8], rtol=1e-6)
    assert tiny.get_index("c") == 2 and tiny.get_index(4) == 4  # an int that is not a key: a row
    assert tiny.get_index("z", default=-1) == -1
    with pytest.raises(KeyError, match="Key 'z' not present"):
        tiny.get_index("z")
    with pytest.raises(KeyError, match="Key 'z' not present"):
        tiny["z"]
    tiny.fill_norms()
    np.testing.assert_allclose(tiny.norms, [1, 2, 5, 1, S2], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(tiny.get_normed_vectors(), axis=1), 1, rtol=1e-6)
    assert str(tiny) == "KeyedVectors<vector_size=2, 5 keys>"


def test_adding_replacing_and_norms(tiny):
    tiny.fill_norms()
    tiny["f"] = np.array([0, 3], dtype=np.float32)  # __setitem__ adds a key
    assert tiny.index_to_key[-1] == "f" and tiny.norms is None  # and resets the cached norms
    tiny["a"] = np.array([2, 0], dtype=np.float32)  # ... and replaces a present one
    np.testing.assert_array_equal(tiny["a"], [2, 0])
    tiny.add_vectors(["a", "g"], np.array([[9, 9], [5, 0]], dtype=np.float32))  # present keys keep theirs
    np.testing.assert_array_equal(tiny["a"], [2, 0])
    tiny.add_vectors(["h", "h"], np.array([[1, 2], [3, 4]], dtype=np.float32), replace=True)
    assert tiny.index_to_key.count("h") == 1
    np.testing.assert_array_equal(tiny["h"], [3, 4])  # a repeated key: its last vector with replace
    assert len(tiny) == len(tiny.vectors) == 8
    with pytest.raises(ValueError, match="shape"):
        tiny.add_vectors(["x"], np.zeros((1, 3)))
    with pytest.warns(UserWarning, match="grows by one"):
        assert tiny.add_vector("i", np.ones(2)) == 8
    assert tiny.add_vector("i", np.zeros(2)) == 8  # present: kept
    np.testing.assert_array_equal(tiny["i"], [1, 1])


def test_preallocated_slots_fill_without_warning():
    kv = KeyedVectors(3, count=2)
    assert kv.add_vector("x", np.ones(3)) == 0 and kv.add_vector("y", np.full(3, 2.0)) == 1
    np.testing.assert_array_equal(kv.vectors, [[1, 1, 1], [2, 2, 2]])
    assert kv.index_to_key == ["x", "y"]


def test_extras_resize_subset_and_unit_normalize(tiny):
    tiny.add_vectors(["p", "q"], np.ones((2, 2)), extras={"count": np.array([3, 4])})
    assert tiny.get_vecattr("q", "count") == 4 and tiny.get_vecattr("a", "count") == 0
    tiny.add_vectors([], [])
    assert len(tiny) == 7
    sub = tiny.vectors_for_all(["c", "zz", "a", "c"], copy_vecattrs=True)
    assert sub.index_to_key == ["c", "a"] and list(sub.expandos["count"]) == [0, 0]
    np.testing.assert_array_equal(sub.vectors, [[3, 4], [1, 0]])
    tiny.index_to_key.append("new")  # a key without a row yet, as a model's vocabulary scan leaves it
    tiny.key_to_index["new"] = 7
    tiny.resize_vectors(seed=1)
    assert tiny.vectors.shape == (8, 2) and np.all(np.abs(tiny["new"]) <= 0.5)
    np.testing.assert_array_equal(tiny.vectors[:5], list(TINY.values()))
    assert tiny.get_vecattr("new", "count") == 0
    tiny.unit_normalize_all()
    np.testing.assert_allclose(np.linalg.norm(tiny.vectors, axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(tiny.norms, 1)


def test_vecattrs_and_sort_by_descending_frequency(tiny):
    for key, count in zip("abcde", [3, 9, 1, 9, 5]):
        tiny.set_vecattr(key, "count", count)
    assert tiny.expandos["count"].dtype == np.int64 and tiny.get_vecattr("b", "count") == 9
    tiny.set_vecattr("a", "tag", "x")
    assert tiny.get_vecattr("a", "tag") == "x" and tiny.get_vecattr("b", "tag") == 0
    with pytest.raises(TypeError, match="conflicts"):
        tiny.set_vecattr("a", "count", 1.5)
    tiny.sort_by_descending_frequency()
    # Descending count; the tie (b, d) ends up in the reverse of its order, as in gensim.
    assert tiny.index_to_key == ["d", "b", "e", "a", "c"]
    assert list(tiny.expandos["count"]) == [9, 9, 5, 3, 1] and tiny.get_vecattr("a", "tag") == "x"
    np.testing.assert_array_equal(tiny["c"], [3, 4])
    assert tiny.key_to_index["c"] == 4
    tiny["f"] = np.zeros(2)
    assert tiny.get_vecattr("f", "count") == 0  # attributes grow with the keys


def test_get_mean_vector(tiny):
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "b"]), [0.5, 0.5])  # unit vectors first
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "b"], pre_normalize=False), [0.5, 1.0])
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "b"], weights=[1.0, -3.0]), [0.25, -0.75])
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "zz"]), [1, 0])  # missing keys skipped
    with pytest.raises(KeyError, match="Key 'zz' not present in vocabulary"):
        tiny.get_mean_vector(["a", "zz"], ignore_missing=False)
    with pytest.raises(ValueError):
        tiny.get_mean_vector([])


# -- similarity queries, by hand -------------------------------------------------------------


def test_most_similar_by_hand(tiny):
    result = tiny.most_similar("a")  # one str alone is allowed; the input is left out
    assert names(result) == ["e", "c", "b", "d"]
    np.testing.assert_allclose(sims(result), [1 / S2, 0.6, 0.0, -1.0], atol=1e-6)
    assert all(type(sim) is float for sim in sims(result).tolist())
    assert names(tiny.most_similar(positive=["a"], topn=2)) == ["e", "c"]
    assert tiny.most_similar("a", topn=0) == []
    # 3CosAdd: the unit vectors b/|b| + c/|c| - a/|a| = (-0.4, 1.8); a, b, c are left out.
    result = tiny.most_similar(positive=["b", "c"], negative=["a"])
    assert names(result) == ["e", "d"]
    np.testing.assert_allclose(sims(result), [1.4 / math.sqrt(6.8), 0.4 / math.sqrt(3.4)], atol=1e-6)
    # (key, weight) pairs: the weight as given, even among the negatives (as in gensim):
    # b + a + 0.5 d = (0.5, 1) is nearer c; b + a - 0.5 d = (1.5, 1) nearer e.
    assert names(tiny.most_similar(positive=[("b", 1.0), ("a", 1.0)], negative=[("d", 0.5)])) == ["c", "e"]
    assert names(tiny.most_similar(positive=[("b", 1.0), ("a", 1.0)], negative=[("d", -0.5)])) == ["e", "c"]


def test_most_similar_vectors_as_inputs(tiny):
    # A raw vector is not left out of the results (it is not a key) and enters the mean as it is.
    result = tiny.most_similar(positive=[np.array([0.0, 5.0], dtype=np.float32)])
    assert names(result) == ["b", "c", "e", "a", "d"]
    np.testing.assert_allclose(sims(result)[:3], [1.0, 0.8, 1 / S2], atol=1e-6)
    assert tiny.similar_by_vector(np.array([0.0, 1.0]), topn=1)[0][0] == "b"
    assert names(tiny.similar_by_word("a", topn=1)) == ["e"] == names(tiny.similar_by_key("a", topn=1))
    # Keys and vectors mixed: b's vector in place of "b" gives the same direction, but b stays in.
    by_vec = tiny.most_similar(positive=[tiny["b"], "c"], negative=["a"])
    assert names(by_vec) == ["b", "e", "d"]


def test_most_similar_topn_none_and_restrict_vocab(tiny):
    all_sims = tiny.most_similar("a", topn=None)
    assert isinstance(all_sims, np.ndarray) and all_sims.shape == (5,)
    np.testing.assert_allclose(all_sims, [1, 0, 0.6, -1, 1 / S2], atol=1e-6)  # the input included
    assert names(tiny.most_similar("a", restrict_vocab=3)) == ["c", "b"]
    np.testing.assert_allclose(tiny.most_similar("a", topn=None, restrict_vocab=3), [1, 0, 0.6], atol=1e-6)


def test_unknown_key_named(tiny):
    with pytest.raises(KeyError, match="Key 'zebra' not present in vocabulary"):
        tiny.most_similar(positive=["a", "zebra"])
    with pytest.raises(KeyError, match="Key 'zebra' not present"):
        tiny.most_similar_cosmul(positive=["a"], negative=["zebra"])
    with pytest.raises(KeyError, match="Key 'zebra' not present"):
        tiny.similarity("a", "zebra")


def test_most_similar_cosmul_by_hand(tiny):
    # score(x) = (1+cos(x,b))/2 * (1+cos(x,c))/2 / ((1+cos(x,a))/2 + 1e-6): d is opposite to a, so
    # its denominator is the epsilon alone.
    result = tiny.most_similar_cosmul(positive=["b", "c"], negative=["a"])
    assert names(result) == ["d", "e"]
    e_num = (1 + 1 / S2) / 2 * (1 + 1.4 / S2) / 2
    np.testing.assert_allclose(sims(result), [0.5 * 0.2 / 1e-6, e_num / ((1 + 1 / S2) / 2 + 1e-6)], rtol=1e-4)
    # One positive key ranks as most_similar does; scores are (1 + cos) / 2 / (1 + 1e-6).
    result = tiny.most_similar_cosmul("a")
    assert names(result) == names(tiny.most_similar("a"))
    np.testing.assert_allclose(sims(result), (1 + sims(tiny.most_similar("a"))) / 2 / (1 + 1e-6), atol=1e-6)
    assert tiny.most_similar_cosmul("a", topn=None).shape == (5,)
    assert names(tiny.most_similar_cosmul("a", restrict_vocab=3)) == ["c", "b"]
    with pytest.raises(ValueError, match="no input"):
        tiny.most_similar_cosmul(negative=["a"])


def test_doesnt_match_and_centrality(tiny, caplog):
    assert tiny.doesnt_match(["a", "e", "c", "d"]) == "d"
    with caplog.at_level(logging.WARNING, logger="fastnn.text.keyedvectors"):
        assert tiny.doesnt_match(["a", "e", "c", "d", "unknown"]) == "d"
    assert "unknown" in caplog.text  # through logging, not the warnings module
    ranked = tiny.rank_by_centrality(["a", "e", "c"])
    assert [w for _, w in ranked] == ["e", "c", "a"]
    with pytest.raises(ValueError):
        tiny.doesnt_match(["x", "y"])


def test_similarity_distance_and_friends(tiny):
    assert tiny.similarity("a", "c") == pytest.approx(0.6, abs=1e-6)
    assert tiny.distance("a", "c") == pytest.approx(0.4, abs=1e-6)
    assert tiny.similarity("c", "c") == pytest.approx(1.0, abs=1e-6)
    assert tiny.n_similarity(["a"], ["b"]) == pytest.approx(0.0, abs=1e-6)
    # Raw means: (a + b) / 2 = (0.5, 1); with c: 1.1 / sqrt(1.25).
    assert tiny.n_similarity(["a", "b"], ["c"]) == pytest.approx(1.1 / math.sqrt(1.25), abs=1e-6)
    with pytest.raises(ZeroDivisionError):
        tiny.n_similarity([], ["a"])
    np.testing.assert_allclose(tiny.distances("a"), 1 - np.array([1, 0, 0.6, -1, 1 / S2]), atol=1e-6)
    np.testing.assert_allclose(tiny.distances(np.array([0.0, 1.0]), ["b", "e"]), [0, 1 - 1 / S2], atol=1e-6)
    assert tiny.closer_than("a", "c") == ["e"] and tiny.rank("a", "c") == 2 and tiny.rank("a", "d") == 4
    np.testing.assert_allclose(
        KeyedVectors.cosine_similarities(np.array([1.0, 0.0]), np.array([[3.0, 4.0], [0.0, 1.0]])), [0.6, 0.0]
    )
    assert tiny.most_similar_to_given("a", ["b", "c", "d"]) == "c"
    assert tiny.relative_cosine_similarity("a", "c", topn=2) == pytest.approx(0.6 / (0.6 + 1 / S2), abs=1e-6)


def test_zero_vector_gives_nan_without_warnings():
    kv = KeyedVectors(2)
    kv.add_vectors(["x", "zero", "y"], np.array([[1, 0], [0, 0], [1, 1]], dtype=np.float32))
    assert names(kv.most_similar("x")) == ["y", "zero"]
    assert np.isnan(kv.most_similar("x", topn=None)[1])


# -- analogies -------------------------------------------------------------------------------

# man/woman differ along y, king/queen add z: woman - man + king = queen.
ROYAL = {
    "man": (1, -1, 0),
    "woman": (1, 1, 0),
    "king": (1, -1, 2),
    "queen": (1, 1, 2),
    "apple": (0, 0, -1),
    "pear": (0.1, 0, -1),
}


@pytest.fixture
def royal():
    kv = KeyedVectors(3)
    kv.add_vectors(list(ROYAL), np.array(list(ROYAL.values()), dtype=np.float32))
    return kv


ANALOGIES = """\
: royal
man woman king queen
Man Woman KING Queen
king queen man apple
man woman prince princess
too few words
: fruit
apple pear man king
apple pear man prince
"""


def test_evaluate_word_analogies(royal, tmp_path, caplog):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGIES)
    with caplog.at_level(logging.INFO, logger="fastnn.text.keyedvectors"):
        score, sections = royal.evaluate_word_analogies(str(path))
    assert "out-of-vocabulary words: 33.3%" in caplog.text  # 2 of 6 questions
    assert [s["section"] for s in sections] == ["royal", "fruit", "Total accuracy"]
    assert sections[0]["correct"] == [("MAN", "WOMAN", "KING", "QUEEN")] * 2  # upper-cased
    # queen + man - king points at woman, not apple; pear - apple + man at king.
    assert sections[0]["incorrect"] == [("KING", "QUEEN", "MAN", "APPLE")]
    assert sections[1]["correct"] == [("APPLE", "PEAR", "MAN", "KING")] and sections[1]["incorrect"] == []
    assert len(sections[2]["correct"]) == 3 and len(sections[2]["incorrect"]) == 1
    assert score == 0.75
    assert set(sections[0]) == {"section", "correct", "incorrect"}


def test_evaluate_word_analogies_options(royal, tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGIES)
    # Case-sensitive: "Man Woman KING Queen" is out of the vocabulary.
    score, sections = royal.evaluate_word_analogies(path, case_insensitive=False)
    assert sections[0]["correct"] == [("man", "woman", "king", "queen")] and score == 2 / 3
    # dummy4unknown: the OOV questions count as wrong.
    score, sections = royal.evaluate_word_analogies(path, dummy4unknown=True)
    assert ("MAN", "WOMAN", "PRINCE", "PRINCESS") in sections[0]["incorrect"] and score == 0.5
    # restrict_vocab=5: pear (row 5) is out, and so is every question with it.
    score, sections = royal.evaluate_word_analogies(path, restrict_vocab=5)
    assert sections[1]["correct"] == [] and sections[1]["incorrect"] == []
    assert score == 2 / 3
    score, sections = royal.evaluate_word_analogies(path, similarity_function="most_similar_cosmul")
    assert len(sections[-1]["correct"]) == 3
    with pytest.raises(ValueError, match="similarity_function"):
        royal.evaluate_word_analogies(path, similarity_function="nope")
    bad = tmp_path / "bad.txt"
    bad.write_text("man woman king queen\n: s\n")
    with pytest.raises(ValueError, match="bad.txt: line 1"):
        royal.evaluate_word_analogies(bad)


def test_evaluate_word_analogies_first_case_variant_wins(royal, tmp_path):
    # "KING" (a far vector) comes after "king": the upper-case form stands for the first (taking
    # KING's vector would predict apple).
    royal.add_vectors(["KING"], np.array([[0, 0, -5]], dtype=np.float32))
    path = tmp_path / "q.txt"
    path.write_text(": s\nman woman king queen\n")
    score, _ = royal.evaluate_word_analogies(path)
    assert score == 1.0


# -- word pairs and correlations -------------------------------------------------------------


def test_spearman_average_ranks_for_ties():
    np.testing.assert_array_equal(kvmod._average_ranks(np.array([10.0, 20, 20, 30, 20])), [1, 3, 3, 5, 3])
    x, y = [1, 2, 2, 3], [1, 3, 2, 4]
    r = kvmod._spearman(x, y)
    expected = np.corrcoef([1, 2.5, 2.5, 4], [1, 3, 2, 4])[0, 1]
    assert r.statistic == pytest.approx(expected, abs=1e-12) and r.correlation == r.statistic
    assert r.pvalue == pytest.approx(1 - expected, abs=1e-12)  # n = 4: p = 1 - |r| exactly


def test_pvalues_closed_forms():
    # Student's t with 1 degree of freedom (n = 3): p = 1 - 2 asin(|r|) / pi; with 2 (n = 4): 1 - |r|.
    rng = np.random.default_rng(5)
    for _ in range(20):
        x, y = rng.standard_normal(3), rng.standard_normal(3)
        res = kvmod._pearson(x, y)
        assert res.pvalue == pytest.approx(1 - 2 * math.asin(abs(res.statistic)) / math.pi, abs=1e-12)
        x, y = rng.standard_normal(4), rng.standard_normal(4)
        res = kvmod._pearson(x, y)
        assert res.statistic == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        assert res.pvalue == pytest.approx(1 - abs(res.statistic), abs=1e-12)
    assert tuple(kvmod._spearman([1, 2, 3], [2, 4, 7])) == (1.0, 0.0)
    assert tuple(kvmod._spearman([1, 2, 3, 4], [2, 1, -1, -3])) == (-1.0, 0.0)
    assert kvmod._pearson([1, 2, 3], [2, 4, 6]).statistic == pytest.approx(1.0, abs=1e-15)
    assert kvmod._pearson([1, 2], [3, 1]) == (-1.0, 1.0)
    assert all(math.isnan(v) for v in kvmod._pearson([1, 2, 3], [1, 1, 1]))
    assert all(math.isnan(v) for v in kvmod._spearman([1, 2, 3], [1, 1, 1]))
    with pytest.raises(ValueError, match="at least 2"):
        kvmod._pearson([1], [2])


def test_pvalues_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    for a, b in [(0.5, 0.5), (1.5, 0.5), (10, 0.5), (0.5, 30), (175, 0.5), (3, 7)]:
        for x in [1e-8, 0.01, 0.3, 0.5, 0.77, 0.99, 1 - 1e-9]:
            assert kvmod._betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10, abs=1e-300)
    rng = np.random.default_rng(7)
    for n in [3, 5, 12, 40, 353]:
        x = rng.standard_normal(n)
        y = 0.3 * x + rng.standard_normal(n)
        y[: n // 3] = np.round(y[: n // 3])  # ties
        for ours, theirs in [
            (kvmod._pearson(x, y), stats.pearsonr(x, y)),
            (kvmod._spearman(x, y), stats.spearmanr(x, y)),
        ]:
            assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-10)
            assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-8)


PAIRS = """\
# a comment
man\twoman\t7.0
king\tqueen\t8.5
MAN\tKing\t5.0
apple\tpear\t9.0
apple\tman\t1.0
apple\tunicorn\t3.0
not a valid line
"""


def test_evaluate_word_pairs(royal, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(PAIRS, encoding="utf8")
    pearson, spearman, oov = royal.evaluate_word_pairs(path)
    gold = [7.0, 8.5, 5.0, 9.0, 1.0]
    model = [
        royal.similarity(a, b)
        for a, b in [("man", "woman"), ("king", "queen"), ("man", "king"), ("apple", "pear"), ("apple", "man")]
    ]
    assert pearson.statistic == pytest.approx(np.corrcoef(gold, model)[0, 1], abs=1e-9)
    assert spearman[0] == pytest.approx(kvmod._spearman(gold, model).statistic, abs=1e-12)
    assert len(pearson) == len(spearman) == 2 and 0 <= pearson[1] <= 1
    assert oov == pytest.approx(100 / 6)
    # Case-sensitive: "MAN King" is unknown too; dummy4unknown scores unknown pairs 0.
    assert royal.evaluate_word_pairs(path, case_insensitive=False)[2] == pytest.approx(200 / 6)
    pearson, _, oov = royal.evaluate_word_pairs(path, dummy4unknown=True)
    assert oov == pytest.approx(100 / 6)  # of the pairs scored, the unknown one included
    assert pearson.statistic == pytest.approx(np.corrcoef(gold + [3.0], model + [0.0])[0, 1], abs=1e-9)
    empty = tmp_path / "empty.tsv"
    empty.write_text("# nothing\nx\ty\t1\n")
    with pytest.raises(ValueError, match="No valid similarity judgements"):
        royal.evaluate_word_pairs(empty)


# -- word2vec formats ------------------------------------------------------------------------

WORDS = ["the", "naïve", "日本語", "Ωmega", "x"]


@pytest.fixture
def w2v():
    rng = np.random.default_rng(3)
    kv = KeyedVectors(4)
    kv.add_vectors(WORDS, rng.standard_normal((5, 4)).astype(np.float32))
    for word, count in zip(WORDS, [50, 20, 30, 10, 5]):
        kv.set_vecattr(word, "count", count)
    return kv


ORDER = ["the", "日本語", "naïve", "Ωmega", "x"]  # by descending count


def assert_same(loaded, kv, order=ORDER):
    assert loaded.index_to_key == order
    np.testing.assert_array_equal(loaded[order], kv[order])
    assert loaded.vectors.dtype == np.float32


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_word2vec_round_trip(w2v, tmp_path, binary, suffix):
    path = tmp_path / f"v.w2v{suffix}"
    w2v.save_word2vec_format(str(path), binary=binary)
    loaded = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert_same(loaded, w2v)
    assert [loaded.get_vecattr(w, "count") for w in ORDER] == [5, 4, 3, 2, 1]  # made up, descending
    opener = {"": open, ".gz": gzip.open, ".bz2": bz2.open}[suffix]
    with opener(path, "rb") as f:
        raw = f.read()
    assert raw.startswith(b"5 4\n")
    if binary:
        row = "日本語 ".encode() + w2v["日本語"].astype("<f4").tobytes()
        assert row in raw and len(raw) == 4 + sum(len(w.encode()) + 1 + 16 for w in WORDS)
    else:
        assert raw.decode().splitlines()[2] == "日本語 " + " ".join(str(v) for v in w2v["日本語"])


def test_word2vec_limit_fvocab_and_options(w2v, tmp_path, caplog):
    path, vocab = tmp_path / "v.txt", tmp_path / "vocab.txt"
    w2v.save_word2vec_format(path, fvocab=vocab)
    assert vocab.read_text(encoding="utf8").splitlines() == ["the 50", "日本語 30", "naïve 20", "Ωmega 10", "x 5"]
    loaded = KeyedVectors.load_word2vec_format(path, fvocab=vocab)
    assert [loaded.get_vecattr(w, "count") for w in ORDER] == [50, 30, 20, 10, 5]
    loaded.save_word2vec_format(tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()

    limited = KeyedVectors.load_word2vec_format(path, limit=2)
    assert_same(limited, w2v, ORDER[:2])
    assert [limited.get_vecattr(w, "count") for w in ORDER[:2]] == [2, 1]

    vocab.write_text("the 50\nx 5\n", encoding="utf8")
    with caplog.at_level(logging.WARNING, logger="fastnn.text.keyedvectors"):
        partial = KeyedVectors.load_word2vec_format(path, fvocab=vocab)
    assert "incomplete" in caplog.text and partial.get_vecattr("naïve", "count") == 0

    as64 = KeyedVectors.load_word2vec_format(path, datatype=np.float64)
    assert as64.vectors.dtype == np.float64  # the shortest float32 decimals, read as float64
    np.testing.assert_array_equal(as64[ORDER].astype(np.float32), w2v[ORDER])

    # No attribute to sort by: index_to_key order, and no fvocab.
    plain = KeyedVectors(4)
    plain.add_vectors(WORDS, w2v[WORDS])
    plain.save_word2vec_format(tmp_path / "plain.bin", binary=True, prefix="p_")
    back = KeyedVectors.load_word2vec_format(tmp_path / "plain.bin", binary=True)
    assert back.index_to_key == ["p_" + w for w in WORDS]
    with pytest.raises(ValueError, match="'count'"):
        plain.save_word2vec_format(tmp_path / "p.txt", fvocab=tmp_path / "pv.txt")

    # GloVe: no header; appending; total_vec.
    w2v.save_word2vec_format(tmp_path / "glove.txt", write_header=False)
    glove = KeyedVectors.load_word2vec_format(tmp_path / "glove.txt", no_header=True)
    assert_same(glove, w2v)
    assert KeyedVectors.load_word2vec_format(tmp_path / "glove.txt", no_header=True, limit=3).index_to_key == ORDER[:3]
    w2v.save_word2vec_format(tmp_path / "two.txt", total_vec=10)
    w2v.save_word2vec_format(tmp_path / "two.txt", write_header=False, prefix="b_", append=True)
    both = KeyedVectors.load_word2vec_format(tmp_path / "two.txt")
    assert both.index_to_key == ORDER + ["b_" + w for w in ORDER]
    with pytest.raises(NotImplementedError):
        KeyedVectors.load_word2vec_format(tmp_path / "glove.txt", binary=True, no_header=True)


def test_word2vec_binary_variants(tmp_path, caplog):
    a = np.array([1.5, -2.0], dtype="<f4").tobytes()
    b = np.array([0.25, 8.0], dtype="<f4").tobytes()
    # The C tool's rows end with a newline; gensim's do not; a leading newline is tolerated.
    for body in [b"a " + a + b"\nb " + b + b"\n", b"a " + a + b"b " + b, b"\na " + a + b"\nb " + b]:
        path = tmp_path / "c.bin"
        path.write_bytes(b"2 2\n" + body)
        kv = KeyedVectors.load_word2vec_format(path, binary=True)
        assert kv.index_to_key == ["a", "b"]
        np.testing.assert_array_equal(kv.vectors, [[1.5, -2.0], [0.25, 8.0]])
    # A word repeated: the first kept, logged.
    path.write_bytes(b"3 2\na " + a + b"\na " + b + b"\nb " + b + b"\n")
    with caplog.at_level(logging.WARNING, logger="fastnn.text.keyedvectors"):
        kv = KeyedVectors.load_word2vec_format(path, binary=True)
    assert kv.index_to_key == ["a", "b"] and kv.vectors.shape == (2, 2) and "duplicate" in caplog.text
    np.testing.assert_array_equal(kv["a"], [1.5, -2.0])
    # A multi-byte character cut in half (the C tool truncates long words by bytes).
    path.write_bytes(b"1 2\n" + "é".encode()[:1] + b"x " + a)
    with pytest.raises(UnicodeDecodeError, match="row 1"):
        KeyedVectors.load_word2vec_format(path, binary=True)
    assert KeyedVectors.load_word2vec_format(path, binary=True, unicode_errors="ignore").index_to_key == ["x"]


def test_word2vec_text_variants(tmp_path):
    path = tmp_path / "v.txt"
    # Trailing spaces (the C tool writes one), CRLF line ends, extra rows past the count.
    path.write_bytes(b"2 3\r\nfoo 1 2 3 \r\nbar 4 5 6e-1\r\nextra 7 8 9\n")
    kv = KeyedVectors.load_word2vec_format(path)
    assert kv.index_to_key == ["foo", "bar"]
    np.testing.assert_array_equal(kv.vectors, np.array([[1, 2, 3], [4, 5, 0.6]], dtype=np.float32))


@pytest.mark.parametrize(
    "content, binary, error, match",
    [
        (b"3 2\na 1 2\nb 3 4\n", False, EOFError, r"bad\.txt: unexpected end of input at line 4"),
        (b"2 2\na 1 2\nb 3\n", False, ValueError, r"bad\.txt: line 3: expected a word and 2 values"),
        (b"2 2\na 1 2\nb 3 x\n", False, ValueError, r"bad\.txt: line 3: could not convert"),
        (b"2 2 2\na 1 2\n", False, ValueError, r"bad\.txt: line 1: expected the header"),
        (b"two 2\n", False, ValueError, r"bad\.txt: line 1"),
        (b"", False, ValueError, r"bad\.txt: line 1"),
        (b"2 2\na " + bytes(8) + b"\nb " + bytes(5), True, EOFError, r"bad\.txt: unexpected end of input in row 2"),
        (b"1 2\nnospace", True, EOFError, r"row 1"),
    ],
)
def test_word2vec_malformed(tmp_path, content, binary, error, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(error, match=match) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert isinstance(info.value, ValueError)  # a truncated file is both EOFError and ValueError


def test_word2vec_refuses_unrepresentable_keys(tmp_path):
    kv = KeyedVectors(2)
    kv.add_vectors(["ok", "two words"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'two words'"):
        kv.save_word2vec_format(tmp_path / "v.txt")
    assert not (tmp_path / "v.txt").exists()


def test_word2vec_streams(w2v, tmp_path):
    import io

    buf = io.BytesIO()
    w2v.save_word2vec_format(buf, binary=True)
    buf.seek(0)
    assert_same(KeyedVectors.load_word2vec_format(buf, binary=True), w2v)


# -- the native format -----------------------------------------------------------------------


def test_save_load_round_trip(w2v, tmp_path):
    w2v.set_vecattr("x", "tag", "noun")
    w2v.set_vecattr("the", "weight", 0.5)
    w2v.add_vectors([7], np.ones((1, 4)))  # an int key
    path = tmp_path / "kv.npz"
    w2v.save(path)
    loaded = KeyedVectors.load(path)
    assert loaded.index_to_key == w2v.index_to_key and loaded.key_to_index == w2v.key_to_index
    assert isinstance(loaded.index_to_key[-1], int)
    np.testing.assert_array_equal(loaded.vectors, w2v.vectors)
    assert loaded.vectors.dtype == w2v.vectors.dtype and loaded.vector_size == 4
    assert set(loaded.expandos) == {"count", "tag", "weight"}
    for attr in loaded.expandos:
        assert loaded.expandos[attr].dtype == w2v.expandos[attr].dtype
        assert list(loaded.expandos[attr]) == list(w2v.expandos[attr])
    assert loaded.most_similar("the") == w2v.most_similar("the")
    with np.load(path, allow_pickle=False) as npz:  # plain arrays and a JSON member
        assert set(npz.files) == {"vectors", "attr0", "attr2", "meta.json"}


def test_load_refuses_other_files(tmp_path):
    import io
    import zipfile

    path = tmp_path / "x.npz"
    np.savez(path, vectors=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="x.npz"):
        KeyedVectors.load(path)
    kv = KeyedVectors(2)
    kv.add_vectors(["a"], np.zeros((1, 2)))
    kv.save(path)
    with zipfile.ZipFile(path) as zf:
        meta = zf.read("meta.json")

    def rewrite(members):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rewrite({"vectors.npy": pickled.getvalue(), "meta.json": meta})
    with pytest.raises(ValueError, match="pickle"):  # never unpickled
        KeyedVectors.load(path)
    two_rows = io.BytesIO()
    np.save(two_rows, np.zeros((2, 2), dtype=np.float32))
    rewrite({"vectors.npy": two_rows.getvalue(), "meta.json": meta})
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(1, 2\)"):
        KeyedVectors.load(path)
    rewrite({"vectors.npy": two_rows.getvalue(), "meta.json": b"{not json"})
    with pytest.raises(ValueError, match="damaged"):
        KeyedVectors.load(path)
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ValueError):
        KeyedVectors.load(tmp_path / "t.txt")


# -- against gensim --------------------------------------------------------------------------


def gensim_data(name):
    gensim = pytest.importorskip("gensim")
    return os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", name)


def twin(words, vectors):
    from gensim.models import KeyedVectors as GensimKV

    ours, theirs = KeyedVectors(vectors.shape[1]), GensimKV(vectors.shape[1])
    ours.add_vectors(words, vectors)
    theirs.add_vectors(words, vectors)
    return ours, theirs


def assert_same_results(a, b, atol=1e-5):
    assert names(a) == names(b)
    np.testing.assert_allclose(sims(a), sims(b), atol=atol, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's cosmul calls its deprecated init_sims
def test_queries_match_gensim():
    pytest.importorskip("gensim")
    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(300)]
    ours, theirs = twin(words, rng.standard_normal((300, 24)).astype(np.float32))
    queries = [
        dict(positive=["w1"]),
        dict(positive=["w1", "w2"], negative=["w3"], topn=20),
        dict(positive="w5", topn=7, restrict_vocab=100),
        dict(positive=[ours["w8"]], negative=["w9", ("w10", 0.5)]),
        dict(positive=["w11", "w12", "w13"], negative=["w14", "w15"], topn=None),
    ]
    for q in queries:
        a, b = ours.most_similar(**q), theirs.most_similar(**q)
        if q.get("topn", 10) is None:
            np.testing.assert_allclose(a, b, atol=1e-6)
        else:
            assert_same_results(a, b)
    for pos, neg in [(["w1", "w2"], ["w3"]), ("w4", None), (["w5", "w6", "w7"], ["w8", "w9"])]:
        assert_same_results(
            ours.most_similar_cosmul(pos, neg, topn=15), theirs.most_similar_cosmul(pos, neg, topn=15), atol=1e-4
        )
    for group in [words[:5], words[10:30], ["w1", "w2", "w3", "nope"]]:
        assert ours.doesnt_match(group) == theirs.doesnt_match(group)
    assert ours.similarity("w1", "w2") == pytest.approx(theirs.similarity("w1", "w2"), abs=1e-6)
    assert ours.n_similarity(words[:3], words[3:9]) == pytest.approx(
        theirs.n_similarity(words[:3], words[3:9]), abs=1e-6
    )
    assert ours.closer_than("w1", "w2") == theirs.closer_than("w1", "w2")
    assert ours.rank("w1", "w2") == theirs.rank("w1", "w2")
    np.testing.assert_allclose(ours.distances("w1", words[5:9]), theirs.distances("w1", words[5:9]), atol=1e-6)


def analogy_vocabulary(path, rng, dim=20):
    """Words from two sections of questions-words.txt with structure (each second word = first +
    a section offset + noise, so 3CosAdd gets many right), some words of other sections at
    random, and case variants of a few; returns (words, vectors)."""
    vecs, section, offsets = {}, None, {}
    with open(path, encoding="utf8") as f:
        lines = f.read().splitlines()
    others = []
    for line in lines:
        if line.startswith(": "):
            section = line[2:]
            offsets[section] = rng.standard_normal(dim)
            continue
        w = line.split()
        if section in ("capital-common-countries", "family"):
            for x, y in [(w[0], w[1]), (w[2], w[3])]:
                vecs.setdefault(x, rng.standard_normal(dim))
                vecs.setdefault(y, vecs[x] + offsets[section] + 0.3 * rng.standard_normal(dim))
        else:
            others.extend(w)
    for w in rng.choice(sorted(set(others)), 150, replace=False):
        vecs.setdefault(str(w), rng.standard_normal(dim))
    words = list(vecs)
    rng.shuffle(words)
    # Case variants: some before their word (they then stand for it), some after.
    upper = [w.upper() for w in words[:10] if w.upper() not in vecs][:6]
    lower = [w.lower() for w in words[10:60] if w.lower() not in vecs][:6]
    words = upper + words + lower
    vectors = np.array([vecs[w] if w in vecs else rng.standard_normal(dim) for w in words], dtype=np.float32)
    return words, vectors


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_evaluate_word_analogies_matches_gensim():
    path = gensim_data("questions-words.txt")
    rng = np.random.default_rng(21)
    words, vectors = analogy_vocabulary(path, rng)
    ours, theirs = twin(words, vectors)
    scores = []
    for kwargs in [dict(), dict(restrict_vocab=150), dict(case_insensitive=False), dict(dummy4unknown=True)]:
        score, sections = ours.evaluate_word_analogies(path, **kwargs)
        their_score, their_sections = theirs.evaluate_word_analogies(path, **kwargs)
        assert sections == their_sections and score == their_score
        assert len(sections) == 15
        scores.append(score)
    assert 0.3 < scores[0] < 1  # the structured sections are mostly right


def test_evaluate_word_pairs_matches_gensim():
    path = gensim_data("wordsim353.tsv")
    rng = np.random.default_rng(31)
    with open(path, encoding="utf8") as f:
        pairs = [line.split("\t")[:2] for line in f if not line.startswith("#")]
    vocab = sorted({w for pair in pairs for w in pair})
    words = list(
        dict.fromkeys([str(w) for w in rng.choice(vocab, int(0.8 * len(vocab)), replace=False)] + ["TIGER", "Love"])
    )
    ours, theirs = twin(words, rng.standard_normal((len(words), 16)).astype(np.float32))
    for kwargs in [dict(), dict(restrict_vocab=200), dict(case_insensitive=False), dict(dummy4unknown=True)]:
        pearson, spearman, oov = ours.evaluate_word_pairs(path, **kwargs)
        their_pearson, their_spearman, their_oov = theirs.evaluate_word_pairs(path, **kwargs)
        assert oov == pytest.approx(their_oov, rel=1e-12)
        for mine, theirs_ in [(pearson, their_pearson), (spearman, their_spearman)]:
            assert mine[0] == pytest.approx(theirs_[0], abs=1e-6)
            assert mine[1] == pytest.approx(theirs_[1], rel=1e-4)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_match_gensim(w2v, tmp_path, binary):
    pytest.importorskip("gensim")
    from gensim.models import KeyedVectors as GensimKV

    theirs = GensimKV(4)
    theirs.add_vectors(WORDS, w2v[WORDS])
    for word in WORDS:
        theirs.set_vecattr(word, "count", int(w2v.get_vecattr(word, "count")))
    ours_path, theirs_path = tmp_path / "ours", tmp_path / "theirs"
    w2v.save_word2vec_format(ours_path, fvocab=tmp_path / "ours.vocab", binary=binary)
    theirs.save_word2vec_format(str(theirs_path), fvocab=str(tmp_path / "theirs.vocab"), binary=binary)
    assert ours_path.read_bytes() == theirs_path.read_bytes()  # byte for byte
    assert (tmp_path / "ours.vocab").read_bytes() == (tmp_path / "theirs.vocab").read_bytes()
    for loader in [KeyedVectors, GensimKV]:
        loaded = loader.load_word2vec_format(str(ours_path), fvocab=str(tmp_path / "ours.vocab"), binary=binary)
        assert_same(loaded, w2v)
        assert [loaded.get_vecattr(w, "count") for w in ORDER] == [50, 30, 20, 10, 5]
    # Files written by gensim from its own vectors.
    rng = np.random.default_rng(4)
    big = GensimKV(7)
    big.add_vectors([f"k{i}é" for i in range(60)], rng.standard_normal((60, 7)) * 1e3)
    big.save_word2vec_format(str(tmp_path / "big"), binary=binary)
    loaded = KeyedVectors.load_word2vec_format(tmp_path / "big", binary=binary, limit=50)
    assert loaded.index_to_key == big.index_to_key[:50]
    np.testing.assert_array_equal(loaded.vectors, big.vectors[:50])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("euclidean_vectors.bin", dict(binary=True)),
        ("pretrained.vec", dict(limit=1)),  # its header declares 3 vectors, it holds 1
        ("crime-and-punishment.vec", dict()),
        ("test_glove.txt", dict(no_header=True)),
        ("high_precision.kv.txt", dict()),
        ("high_precision.kv.txt", dict(datatype=np.float64)),
        ("high_precision.kv.bin", dict(binary=True)),
    ],
)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # gensim leaves a file open
def test_gensim_sample_files_load_the_same(name, kwargs):
    import gc

    path = gensim_data(name)
    from gensim.models import KeyedVectors as GensimKV

    ours, theirs = KeyedVectors.load_word2vec_format(path, **kwargs), GensimKV.load_word2vec_format(path, **kwargs)
    gc.collect()
    assert ours.index_to_key == theirs.index_to_key and len(ours) > 0
    assert ours.vectors.dtype == theirs.vectors.dtype
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    np.testing.assert_array_equal(ours.expandos["count"], theirs.expandos["count"])


def test_truncated_sample_file_fails_in_both():
    path = gensim_data("pretrained.vec")
    from gensim.models import KeyedVectors as GensimKV

    for cls in [KeyedVectors, GensimKV]:
        with pytest.raises(EOFError):
            cls.load_word2vec_format(path)
