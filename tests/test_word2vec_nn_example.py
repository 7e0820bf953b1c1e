"""examples/word2vec_nn.py: skip-gram with negative sampling through nn.Embedding(sparse=True)
and optim.SparseAdam. A short run learns (the held-out loss falls well below the untrained
(K + 1) log 2), the gradients are row-sparse and a step moves only the rows they name, and the
pair builder keeps to the window inside one sentence without out-of-vocabulary words."""

import importlib.util
import math
import pathlib

import fastnn
import numpy as np
import pytest
from fastnn.sparse import RowSparse

_PATH = pathlib.Path(__file__).resolve().parent.parent / "examples" / "word2vec_nn.py"


@pytest.fixture(scope="module")
def w2v():
    if not _PATH.is_file():
        pytest.skip("examples/word2vec_nn.py is not here (tests run outside a checkout)")
    spec = importlib.util.spec_from_file_location("word2vec_nn_example", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trained(w2v):
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        train, heldout = w2v.split_heldout(w2v.load_corpus(limit_speeches=1500))
        model, history = w2v.train(train, heldout, dim=32, epochs=2, seed=0, log=None)
    finally:
        fastnn.set_num_threads(old)
    return model, history


def test_corpus_and_vocab(w2v):
    sentences = w2v.load_corpus(limit_speeches=40)
    assert len(sentences) == 40
    assert sentences[0] == "before we proceed any further hear me speak".split()  # "First Citizen:" dropped
    assert sentences[1] == ["speak", "speak"]
    train, heldout = w2v.split_heldout(sentences)
    assert len(heldout) == 4 and heldout[0] == sentences[9] and len(train) == 36
    words, counts = w2v.build_vocab(sentences, min_count=5)
    assert len(words) == len(counts) > 0 and np.all(np.diff(counts) <= 0) and counts[-1] >= 5


def test_pairs_respect_window_and_drop_oov(w2v):
    # word "w<n>" is the n-th in-vocabulary token of the corpus, so an id difference is a distance
    # in the sequence the windows run over (the OOV words "zz" taken out)
    sentences, n = [], 0
    for length in (1, 3, 9, 14, 2):
        s = []
        for j in range(length):
            s.append(f"w{n}")
            n += 1
            if j % 3 == 1:
                s.append("zz")
        sentences.append(s)
    words = [f"w{i}" for i in range(n)]
    ids, sent = w2v.encode(sentences, words)
    assert np.array_equal(ids, np.arange(n))
    window = 4
    sent_of = sent[ids]
    for rng in (None, np.random.default_rng(1)):
        centre, context = w2v.make_pairs(ids, sent, window, rng)
        assert len(centre) == len(context) > 0
        assert centre.min() >= 0 and context.max() < n  # no OOV id
        dist = np.abs(centre - context)
        assert np.all((dist >= 1) & (dist <= window))
        assert np.array_equal(sent_of[centre], sent_of[context])
        got = sorted(zip(centre.tolist(), context.tolist()))
        assert len(set(got)) == len(got)
        if rng is None:  # the full window: every pair within reach, both ways
            lengths = np.bincount(sent)
            want = sum(2 * max(0, m - d) for m in lengths for d in range(1, window + 1))
            assert len(got) == want
    # subsampling with keep probability 0 for even ids leaves odd ones only
    keep = np.where(np.arange(n) % 2 == 0, 0.0, 1.0)
    centre, context = w2v.make_pairs(ids, sent, window, np.random.default_rng(2), keep)
    assert len(centre) and np.all(centre % 2 == 1) and np.all(context % 2 == 1)


def test_sparse_gradients_and_step(w2v):
    fastnn.manual_seed(0)
    V, D, K = 50, 8, 3
    model = w2v.SkipGram(V, D)
    fastnn.nn.init.normal_(model.out_embed.weight, std=0.1)  # nonzero, so both tables get gradients
    opt = fastnn.optim.SparseAdam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    centre, context, negs = rng.integers(0, 20, 6), rng.integers(0, 20, 6), rng.integers(10, 30, (6, K))
    before = [p.detach().numpy().copy() for p in (model.in_embed.weight, model.out_embed.weight)]
    loss = model(centre, context, negs)
    assert abs(float(loss.item()) - (K + 1) * math.log(2)) < 0.1  # small scores: about (K + 1) log 2
    opt.zero_grad()
    loss.backward()
    g_in, g_out = model.in_embed.weight.grad, model.out_embed.weight.grad
    assert isinstance(g_in, RowSparse) and isinstance(g_out, RowSparse)
    assert set(g_in.indices.tolist()) == set(context.tolist())
    assert set(g_out.indices.tolist()) == set(centre.tolist()) | set(negs.ravel().tolist())
    opt.step()
    for p, old, g in zip((model.in_embed.weight, model.out_embed.weight), before, (g_in, g_out)):
        changed = np.flatnonzero(np.any(p.detach().numpy() != old, axis=1))
        assert set(changed.tolist()) == set(g.indices.tolist())


def test_short_training_learns(w2v, trained):
    model, history = trained
    untrained = history[0]["heldout_loss"]
    assert abs(untrained - 6 * math.log(2)) < 1e-3  # output vectors start at zero: (K + 1) log 2
    assert len(history) == 3
    assert history[1]["heldout_loss"] < untrained - 0.8
    assert history[2]["heldout_loss"] < min(history[1]["heldout_loss"], 0.75 * untrained)
    assert history[2]["train_loss"] < history[1]["train_loss"]
    assert all(h["words_per_s"] > 0 and h["pairs_per_s"] > 0 for h in history[1:])
    near = w2v.neighbours(model, ["king", "nosuchword"], k=5)
    assert list(near) == ["king"] and len(near["king"]) == 5
    assert all(w != "king" and -1 <= c <= 1 for w, c in near["king"])
