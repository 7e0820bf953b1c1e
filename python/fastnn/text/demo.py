"""`fastnn demo word2vec`: skip-gram word vectors trained offline on the bundled tinyshakespeare
text (one sentence per speech, about 200,000 words), then the nearest neighbours of a few words
and the training speed."""

import time

from .utils import tinyshakespeare_sentences
from .word2vec import Word2Vec

QUERIES = ("king", "love", "night", "father", "sword", "death", "rome", "good")


def word2vec(epochs=10, seed=1, workers=1, sg=1, vector_size=100, log=print, queries=QUERIES, topn=6):
    """Train, print neighbours and words/s; returns the model."""
    sents = tinyshakespeare_sentences()
    n_words = sum(len(s) for s in sents)
    log(f"tinyshakespeare: {len(sents):,} speeches, {n_words:,} words")
    model = Word2Vec(vector_size=vector_size, window=5, min_count=5, sg=sg, negative=5, workers=workers, seed=seed)
    model.build_vocab(sents)
    log(
        f"vocabulary: {len(model.wv.index_to_key):,} words seen at least 5 times; "
        f"{'skip-gram' if sg else 'CBOW'}, negative sampling, {vector_size} dimensions, window 5, "
        f"{workers} worker{'s' if workers != 1 else ''}"
    )
    t0 = time.perf_counter()
    trained, raw = model.train(sents, total_examples=model.corpus_count, epochs=epochs)
    dt = time.perf_counter() - t0
    log(
        f"trained {epochs} epochs in {dt:.2f} s: {raw / dt:,.0f} words/s ({trained / dt:,.0f} after "
        "subsampling frequent words)"
    )
    for q in queries:
        if q in model.wv:
            near = ", ".join(f"{w} {s:.2f}" for w, s in model.wv.most_similar(q, topn=topn))
            log(f"  {q:>8}: {near}")
    return model
