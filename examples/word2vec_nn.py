"""Skip-gram word vectors with negative sampling, trained through the general layers: two
nn.Embedding(V, D, sparse=True) tables (input vectors v, output vectors u) and optim.SparseAdam,
which updates only the rows a batch looks up.

For a batch of (centre, context) pairs and K negative words per pair the loss is

    mean( -logsigmoid(u_centre . v_context) - sum_k logsigmoid(-u_neg_k . v_context) )

with v the input vector of the context word and u the output vectors of the centre word and of
the negatives. The data is the bundled tinyshakespeare text: one sentence per speech (the
"Name:" line dropped), tokens the lowercase runs of letters, every tenth speech held out. Each
epoch subsamples frequent words, draws a reduced window per word and builds the pairs with NumPy;
negatives come from the unigram distribution raised to 0.75. The held-out loss uses the same
formula on fixed pairs (full window, no subsampling) with negatives drawn once.

    python examples/word2vec_nn.py
    python examples/word2vec_nn.py --epochs 1 --limit-speeches 2000

At the end the same speeches train fastnn.text.Word2Vec (the dedicated C++ trainer, skip-gram
with the same window, negatives, subsampling and vector size), copied into a SkipGram and scored
on the same held-out pairs; the script prints both held-out losses, how many nearest neighbours
the two models share and how their word similarities correlate (--no-compare skips it).
"""

import argparse
import re
import time
from collections import Counter

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import fastnn.optim as optim
import numpy as np
from fastnn.data import load_tinyshakespeare

QUERIES = ("king", "love", "night", "father", "sword", "death", "good")
_WORD = re.compile(r"[^\W\d_]+")


# -- data -------------------------------------------------------------------------------------


def load_corpus(text=None, limit_speeches=None):
    """The speeches of `text` (default: tinyshakespeare) as lists of lowercase word tokens: blocks
    separated by blank lines, each one's first line (the speaker, "Name:") dropped."""
    if text is None:
        text = load_tinyshakespeare()
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    if limit_speeches is not None:
        blocks = blocks[:limit_speeches]
    sentences = []
    for block in blocks:
        lines = block.strip("\n").split("\n")
        sentences.append(_WORD.findall(" ".join(lines[1:]).lower()))
    return sentences


def split_heldout(sentences, every=10):
    """(train, held-out): every `every`-th speech (the last of each group) held out."""
    train = [s for i, s in enumerate(sentences) if i % every != every - 1]
    heldout = [s for i, s in enumerate(sentences) if i % every == every - 1]
    return train, heldout


def build_vocab(sentences, min_count=5):
    """(words, counts): the words seen at least min_count times, by descending count (ties in
    first-seen order), and their counts as an int64 array."""
    counts = Counter(w for s in sentences for w in s)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: -counts[w])
    return kept, np.array([counts[w] for w in kept], np.int64)


def encode(sentences, words):
    """(ids, sent): the corpus as one int64 array of word ids with out-of-vocabulary words dropped,
    and each token's sentence number (windows never cross a sentence)."""
    index = {w: i for i, w in enumerate(words)}
    ids, sent = [], []
    for n, s in enumerate(sentences):
        row = [index[w] for w in s if w in index]
        ids.extend(row)
        sent.extend([n] * len(row))
    return np.array(ids, np.int64), np.array(sent, np.int64)


def keep_probs(counts, sample=1e-3):
    """word2vec's subsampling: keep a word of count c with probability min(1, (sqrt(c/t) + 1) t/c),
    t = sample * (total count)."""
    t = sample * counts.sum()
    c = counts.astype(np.float64)
    return np.minimum(1.0, (np.sqrt(c / t) + 1) * t / c)


def make_pairs(ids, sent, window=5, rng=None, keep=None):
    """(centre, context) word-id arrays of the skip-gram pairs: every word with each word at most
    `window` positions away in the same sentence, both directions. With rng, words are first
    subsampled (kept with probability keep[id], when keep is given) and each centre word's window
    is reduced to window - b, b uniform in [0, window) (word2vec's dynamic window); without it the
    full window is used and the pairs come in position order."""
    ids, sent = np.asarray(ids, np.int64), np.asarray(sent, np.int64)
    if rng is not None and keep is not None:
        mask = rng.random(len(ids)) < keep[ids]
        ids, sent = ids[mask], sent[mask]
    n = len(ids)
    reach = window - rng.integers(0, window, n) if rng is not None else np.full(n, window)
    centres, contexts = [], []
    for d in range(1, window + 1):
        if d >= n:
            break
        same = sent[d:] == sent[:-d]  # positions i (right of i - d) in one sentence with i - d
        left = np.flatnonzero(same & (reach[d:] >= d)) + d  # centre i, context i - d
        right = np.flatnonzero(same & (reach[:-d] >= d))  # centre i, context i + d
        centres += [ids[left], ids[right]]
        contexts += [ids[left - d], ids[right + d]]
    if not centres:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centres), np.concatenate(contexts)


def negative_sampler(counts, power=0.75):
    """draw(rng, shape): word ids from the unigram distribution raised to `power`."""
    cdf = np.cumsum(counts.astype(np.float64) ** power)
    cdf /= cdf[-1]

    def draw(rng, shape):
        return np.minimum(np.searchsorted(cdf, rng.random(shape), side="right"), len(cdf) - 1)

    return draw


# -- model ------------------------------------------------------------------------------------


class SkipGram(nn.Module):
    """Input vectors (in_embed) and output vectors (out_embed) of a vocabulary of V words, both
    row-sparse in their gradients. Initialised as word2vec does: input vectors uniform in
    +-0.5/D, output vectors zero (so an untrained model's loss is (K + 1) log 2)."""

    def __init__(self, num_words, dim=100):
        super().__init__()
        self.in_embed = nn.Embedding(num_words, dim, sparse=True)
        self.out_embed = nn.Embedding(num_words, dim, sparse=True)
        nn.init.uniform_(self.in_embed.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.out_embed.weight)

    def forward(self, centre, context, negatives, reduction="mean"):
        """The negative-sampling loss of pairs (centre (B,), context (B,)) with negatives (B, K)
        word ids (NumPy arrays or tensors); reduction "mean", "sum" or "none" (per pair, (B,))."""
        targets = np.concatenate([np.asarray(centre).reshape(-1, 1), np.asarray(negatives)], axis=1)
        v = self.in_embed(context)  # (B, D)
        u = self.out_embed(targets)  # (B, K+1, D): the centre word's output vector, then the negatives'
        # (B, K+1) dot products: einsum is faster here than bmm, whose gemm does B tiny products
        scores = fastnn.einsum("bkd,bd->bk", u, v)
        sign = np.ones(targets.shape[1], np.float32)
        sign[1:] = -1  # logsigmoid(s) for the true pair, logsigmoid(-s) for the negatives
        per_pair = -F.logsigmoid(scores * fastnn.from_numpy(sign)).sum(1)
        if reduction == "none":
            return per_pair
        return per_pair.sum() if reduction == "sum" else per_pair.mean()


# -- training ---------------------------------------------------------------------------------


def heldout_loss(model, centre, context, negatives, batch=8192):
    """The mean loss of fixed pairs and negatives, without gradients."""
    total = 0.0
    with fastnn.no_grad():
        for i in range(0, len(centre), batch):
            s = slice(i, i + batch)
            total += float(model(centre[s], context[s], negatives[s], reduction="sum").item())
    return total / max(len(centre), 1)


def train(
    train_sentences,
    heldout_sentences,
    dim=100,
    epochs=5,
    batch=1024,
    lr=3e-3,
    window=5,
    negatives=5,
    min_count=5,
    sample=1e-3,
    seed=0,
    decay=True,
    log=print,
):
    """Train a SkipGram on the training speeches; returns (model, history). The model carries its
    vocabulary (model.words, model.counts). With decay the learning rate falls linearly from lr
    to lr / 100 over the run (as word2vec's does). history[0] is the untrained held-out loss (epoch 0);
    then one dict per epoch: train_loss, heldout_loss, words_per_s (in-vocabulary training
    words before subsampling, per second of training), pairs_per_s, seconds."""
    fastnn.manual_seed(seed)
    rng = np.random.default_rng(seed)
    words, counts = build_vocab(train_sentences, min_count)
    if not words:
        raise ValueError(f"no word occurs {min_count} times in the training speeches")
    ids, sent = encode(train_sentences, words)
    keep = keep_probs(counts, sample)
    draw = negative_sampler(counts)

    h_centre, h_context = make_pairs(*encode(heldout_sentences, words), window)
    h_negs = draw(np.random.default_rng(12345), (len(h_centre), negatives))

    model = SkipGram(len(words), dim)
    model.words, model.counts = words, counts
    opt = optim.SparseAdam(model.parameters(), lr=lr)

    history = [{"epoch": 0, "heldout_loss": heldout_loss(model, h_centre, h_context, h_negs)}]
    if log:
        log(
            f"vocabulary {len(words)} words, {len(ids)} training tokens, {len(h_centre)} held-out pairs; "
            f"untrained held-out loss {history[0]['heldout_loss']:.4f}"
        )
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        centre, context = make_pairs(ids, sent, window, rng, keep)
        order = rng.permutation(len(centre))
        centre, context = centre[order], context[order]
        negs = draw(rng, (len(centre), negatives))
        total, seen = 0.0, 0
        for i in range(0, len(centre), batch):
            s = slice(i, i + batch)
            if decay:  # linearly to lr / 100 over the run, as word2vec's lr
                for g in opt.param_groups:
                    g["lr"] = lr * max(0.01, 1 - (epoch - 1 + i / len(centre)) / epochs)
            loss = model(centre[s], context[s], negs[s])
            opt.zero_grad()
            loss.backward()
            opt.step()
            n = len(centre[s])
            total += float(loss.item()) * n
            seen += n
        seconds = time.perf_counter() - t0
        h = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "heldout_loss": heldout_loss(model, h_centre, h_context, h_negs),
            "words_per_s": len(ids) / seconds,
            "pairs_per_s": seen / seconds,
            "seconds": seconds,
        }
        history.append(h)
        if log:
            log(
                f"epoch {epoch}: train loss {h['train_loss']:.4f}  held-out loss {h['heldout_loss']:.4f}  "
                f"{h['words_per_s']:,.0f} words/s  {h['pairs_per_s']:,.0f} pairs/s  ({seconds:.1f} s)"
            )
    return model, history


def neighbours(model, queries=QUERIES, k=8):
    """{query: [(word, cosine), ...]}: the k nearest words of each query (that is in the
    vocabulary) by cosine similarity of the input vectors."""
    w = model.in_embed.weight.detach().numpy().astype(np.float64)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    index = {word: i for i, word in enumerate(model.words)}
    out = {}
    for q in queries:
        if q not in index:
            continue
        sims = w @ w[index[q]]
        sims[index[q]] = -np.inf
        best = np.argsort(-sims)[:k]
        out[q] = [(model.words[j], float(sims[j])) for j in best]
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dim", type=int, default=100, help="vector size D")
    ap.add_argument("--batch", type=int, default=1024, help="pairs per batch")
    ap.add_argument("--lr", type=float, default=3e-3, help="SparseAdam learning rate")
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--negatives", type=int, default=5, help="negatives per pair (K)")
    ap.add_argument("--no-decay", action="store_true", help="keep the learning rate constant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="fastnn's thread count (default: as set)")
    ap.add_argument("--limit-speeches", type=int, default=None, help="use only the first N speeches")
    ap.add_argument("--no-compare", action="store_true", help="skip the comparison with fastnn.text.Word2Vec")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    train_s, heldout_s = split_heldout(load_corpus(limit_speeches=args.limit_speeches))
    print(f"{len(train_s)} training speeches, {len(heldout_s)} held out")
    model, history = train(
        train_s,
        heldout_s,
        dim=args.dim,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        window=args.window,
        negatives=args.negatives,
        seed=args.seed,
        decay=not args.no_decay,
    )
    print("nearest neighbours (cosine of the input vectors):")
    for q, near in neighbours(model).items():
        print(f"  {q:>7}: " + ", ".join(f"{w} {c:.2f}" for w, c in near))
    if not args.no_compare:
        compare_with_word2vec(model, train_s, heldout_s, args)
    return model, history


def as_skipgram(w2v, words):
    """A SkipGram holding a fastnn.text.Word2Vec's input vectors and output weights (syn1neg),
    rows in the order of words."""
    rows = np.array([w2v.wv.key_to_index[w] for w in words])
    m = SkipGram(len(words), w2v.vector_size)
    m.in_embed.weight.data[...] = w2v.wv.vectors[rows]
    m.out_embed.weight.data[...] = w2v.syn1neg[rows]
    m.words, m.counts = words, None
    return m


def compare_with_word2vec(model, train_s, heldout_s, args, top=500):
    """Train fastnn.text.Word2Vec on the same speeches and settings; print both held-out losses
    (the same pairs and negatives), the shared nearest neighbours and the Spearman correlation of
    the cosine similarities among the `top` most frequent words."""
    from fastnn.text import Word2Vec

    w2v = Word2Vec(
        train_s,
        vector_size=args.dim,
        window=args.window,
        negative=args.negatives,
        sg=1,
        min_count=5,
        sample=1e-3,
        epochs=max(args.epochs, 5),
        workers=1,
        seed=args.seed + 1,
    )
    words = model.words
    dedicated = as_skipgram(w2v, words)
    centre, context = make_pairs(*encode(heldout_s, words), args.window)
    negs = negative_sampler(model.counts)(np.random.default_rng(12345), (len(centre), args.negatives))
    print(
        f"held-out loss: nn.Embedding + SparseAdam {heldout_loss(model, centre, context, negs):.4f}, "
        f"fastnn.text.Word2Vec {heldout_loss(dedicated, centre, context, negs):.4f}"
    )
    a, b = neighbours(model), neighbours(dedicated)
    shared = sum(len({w for w, _ in a[q]} & {w for w, _ in b[q]}) for q in a)
    print(f"nearest neighbours shared: {shared} of {sum(len(v) for v in a.values())}")

    def cosines(m):
        w = m.in_embed.weight.detach().numpy()[:top].astype(np.float64)
        w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        return (w @ w.T)[np.triu_indices(len(w), 1)]

    ranks = [np.argsort(np.argsort(c)) for c in (cosines(model), cosines(dedicated))]
    rho = np.corrcoef(*ranks)[0, 1]
    print(f"Spearman correlation of the word similarities among the {top} most frequent words: {rho:.3f}")


if __name__ == "__main__":
    main()
