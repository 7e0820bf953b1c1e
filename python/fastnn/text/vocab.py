"""The vocabulary side of word2vec: counting, pruning, frequent-word subsampling, the
negative-sampling table and the Huffman tree, with gensim 4's rules (the formulas are in each
function's docstring; tests/test_word2vec.py checks them against those formulas)."""

import heapq
import math
from collections import Counter

import numpy as np

__all__ = [
    "RULE_DEFAULT",
    "RULE_DISCARD",
    "RULE_KEEP",
    "count_words",
    "keep_rule",
    "sample_ints",
    "cum_table",
    "huffman",
]

# trim_rule(word, count, min_count) answers one of these (gensim.utils' values)
RULE_DEFAULT, RULE_DISCARD, RULE_KEEP = 0, 1, 2

# the negative-sampling table's range: word i covers [table[i-1], table[i]) of [0, CUM_DOMAIN)
CUM_DOMAIN = 2**31 - 1


def keep_rule(word, count, min_count, trim_rule=None):
    """True when word (seen count times) stays in the vocabulary: trim_rule's answer when it
    gives RULE_KEEP or RULE_DISCARD, else count >= min_count."""
    if trim_rule is not None:
        r = trim_rule(word, count, min_count)
        if r == RULE_KEEP:
            return True
        if r == RULE_DISCARD:
            return False
    return count >= min_count


def _prune(counts, min_reduce, trim_rule):
    """Drop the words counted fewer than min_reduce times (gensim's prune_vocab): what keeps a
    growing vocabulary under max_vocab_size."""
    for w in [w for w, c in counts.items() if not keep_rule(w, c, min_reduce, trim_rule)]:
        del counts[w]


def count_words(sentences, max_vocab_size=None, trim_rule=None):
    """Count the tokens of an iterable of token lists: (Counter in first-seen order, number of
    sentences, number of tokens). With max_vocab_size, whenever the vocabulary grows past it the
    words seen fewer than min_reduce times are dropped and min_reduce grows by one (gensim's
    rule: counts of words dropped then are lost, so a later count may be low)."""
    counts = Counter()
    n_sentences = n_tokens = 0
    min_reduce = 1
    for s in sentences:
        counts.update(s)
        n_sentences += 1
        n_tokens += len(s)
        if max_vocab_size and len(counts) > max_vocab_size:
            _prune(counts, min_reduce, trim_rule)
            min_reduce += 1
    return counts, n_sentences, n_tokens


def sample_ints(counts, sample):
    """Keep thresholds for frequent-word subsampling (gensim's prepare_vocab): with t =
    sample * sum(counts) (sample < 1; sample >= 1 is an absolute count, and 0 turns subsampling
    off), a word seen c times is kept with probability p = min(1, (sqrt(c / t) + 1) * t / c),
    stored as uint32(p * (2^32 - 1)) (an occurrence is kept when a uniform 32-bit draw is below
    it; 2^32 - 1 always keeps). Returns (thresholds, expected words kept)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if not sample:
        t = total
    elif sample < 1.0:
        t = sample * total
    else:
        t = float(int(sample * (3 + math.sqrt(5)) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(c > 0, (np.sqrt(c / t) + 1) * (t / c), 1.0)
    p = np.minimum(p, 1.0)
    return (p * (2**32 - 1)).astype(np.uint32), float((p * c).sum())


def cum_table(counts, ns_exponent=0.75):
    """The negative-sampling table (gensim's make_cum_table): table[i] = round(CUM_DOMAIN *
    sum_{j <= i} c_j^e / sum_j c_j^e), uint32; a draw r uniform in [0, table[-1]) picks the first
    i with table[i] > r, word i with probability c_i^e / sum_j c_j^e. ns_exponent 0 samples
    uniformly, negative values favour rare words."""
    c = np.asarray(counts, dtype=np.float64)
    if len(c) == 0:
        return np.zeros(0, np.uint32)
    w = c**ns_exponent
    cum = np.cumsum(w)
    return np.round(cum / cum[-1] * CUM_DOMAIN).astype(np.uint32)


def huffman(counts):
    """The Huffman tree of hierarchical softmax: repeatedly merge the two least frequent nodes
    (any such tree has the least total cost sum_w count_w * depth_w; word2vec.c's and gensim's
    differ from this one only where counts tie); the V - 1 inner nodes are numbered in creation order, so the root is
    V - 2. Returns (points int32 (V, L), codes uint8 (V, L), lengths int32 (V,)): word w's path
    from the root, points[w, k] the inner node at depth k and codes[w, k] the branch taken from
    it: 0 towards the first of the two nodes merged there (the less frequent), 1 towards the
    second. Ties between equal counts go to the lower node number (leaves by index first)."""
    counts = [int(c) for c in counts]
    V = len(counts)
    if V < 2:  # one word: no inner node, nothing to predict
        return np.zeros((V, 1), np.int32), np.zeros((V, 1), np.uint8), np.zeros(V, np.int32)
    heap = [(c, i) for i, c in enumerate(counts)]  # (count, node); leaves 0..V-1, inner V..2V-2
    heapq.heapify(heap)
    left = np.empty(V - 1, np.int64)
    right = np.empty(V - 1, np.int64)
    for k in range(V - 1):
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        left[k], right[k] = a, b
        heapq.heappush(heap, (c1 + c2, V + k))
    # walk down from the root: each node's path is its parent's plus one step
    paths_p = {2 * V - 2: []}
    paths_c = {2 * V - 2: []}
    points = [None] * V
    codes = [None] * V
    stack = [2 * V - 2]
    while stack:
        node = stack.pop()
        k = node - V
        for child, bit in ((left[k], 0), (right[k], 1)):
            p = paths_p[node] + [k]
            c = paths_c[node] + [bit]
            if child < V:
                points[child], codes[child] = p, c
            else:
                paths_p[child], paths_c[child] = p, c
                stack.append(int(child))
        del paths_p[node], paths_c[node]
    L = max(len(p) for p in points)
    P = np.zeros((V, L), np.int32)
    C = np.zeros((V, L), np.uint8)
    n = np.zeros(V, np.int32)
    for w in range(V):
        n[w] = len(points[w])
        P[w, : n[w]] = points[w]
        C[w, : n[w]] = codes[w]
    return P, C, n
