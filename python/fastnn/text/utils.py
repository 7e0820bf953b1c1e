"""Tokenising, the bundled corpus as sentences, and a held-out loss that scores any word2vec
model (fastnn's or gensim's) on the same pairs and negatives."""

import re

import numpy as np

__all__ = ["simple_preprocess", "tinyshakespeare_sentences", "negative_sampling_loss"]

# runs of letters (Unicode word characters other than digits and the underscore), as gensim's
# simple_preprocess reads a document
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def simple_preprocess(doc, deacc=False, min_len=2, max_len=15):
    """Lower-cased runs of letters of doc between min_len and max_len characters long (gensim's
    simple_preprocess without accent stripping; deacc=True strips combining accents)."""
    if deacc:
        import unicodedata

        doc = "".join(c for c in unicodedata.normalize("NFD", doc) if not unicodedata.combining(c))
    return [t for t in _WORD.findall(doc.lower()) if min_len <= len(t) <= max_len]


def tinyshakespeare_sentences(min_len=1):
    """The bundled tinyshakespeare text as sentences for word2vec: one per speech (the lines
    between blank lines, the speaker's name left out), tokenised by simple_preprocess(min_len=1
    by default, so "a" and "i" stay). About 7,200 speeches and 200,000 words."""
    from ..data import load_tinyshakespeare

    out = []
    for block in load_tinyshakespeare().split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) > 1 and lines[0].endswith(":"):
            lines = lines[1:]
        words = simple_preprocess(" ".join(lines), min_len=min_len)
        if words:
            out.append(words)
    return out


def negative_sampling_loss(
    vectors,
    outputs,
    key_to_index,
    sentences,
    words,
    counts,
    window=5,
    negative=5,
    ns_exponent=0.75,
    sg=True,
    seed=0,
    max_examples=200_000,
):
    """The mean negative-sampling loss of a trained model on held-out sentences: for each
    prediction, -log sigmoid(h . u_target) - sum_k log sigmoid(-h . u_neg_k), where h is the
    context word's input vector (sg) or the mean of the window's input vectors (CBOW), u the
    output weights (gensim's and fastnn's syn1neg), over every position with the full window and
    no subsampling. Negatives are drawn as words from (words, counts)^ns_exponent with seed, so
    two models with the same vocabulary are scored on the same pairs and the same negatives
    whatever their row order. Words outside the vocabulary are dropped first."""
    idx_of = {w: i for i, w in enumerate(words)}
    rows = np.array([key_to_index[w] for w in words], dtype=np.int64)  # shared index -> model row
    seqs = [[idx_of[t] for t in s if t in idx_of] for s in sentences]
    p = np.asarray(counts, np.float64) ** ns_exponent
    p /= p.sum()
    rng = np.random.default_rng(seed)
    centres, ctx = [], []  # sg: (context, centre) pairs; cbow: (window list, centre)
    for s in seqs:
        n = len(s)
        for i in range(n):
            lo, hi = max(0, i - window), min(n, i + window + 1)
            c = [s[j] for j in range(lo, hi) if j != i]
            if not c:
                continue
            if sg:
                centres.extend([s[i]] * len(c))
                ctx.extend(c)
            else:
                centres.append(s[i])
                ctx.append(c)
    if not centres:
        raise ValueError("negative_sampling_loss: no prediction in the held-out sentences")
    sel = np.arange(len(centres))
    if len(sel) > max_examples:
        sel = np.sort(rng.choice(len(sel), max_examples, replace=False))
    centre = np.asarray(centres, np.int64)[sel]
    neg = rng.choice(len(words), size=(len(sel), negative), p=p)
    V = np.asarray(vectors, np.float64)
    U = np.asarray(outputs, np.float64)
    if sg:
        h = V[rows[np.asarray(ctx, np.int64)[sel]]]
    else:
        h = np.stack([V[rows[ctx[k]]].mean(axis=0) for k in sel])
    pos = np.einsum("nd,nd->n", h, U[rows[centre]])
    negs = np.einsum("nd,nkd->nk", h, U[rows[neg]])
    loss = np.logaddexp(0.0, -pos) + np.logaddexp(0.0, negs).sum(axis=1)
    return float(loss.mean())
