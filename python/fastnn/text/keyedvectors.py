"""fastnn.text.keyedvectors: KeyedVectors, gensim 4's mapping of keys (words) to vectors, in NumPy.

The class keeps gensim 4's names, defaults and return types (``vectors``, ``index_to_key``,
``key_to_index``, ``most_similar``, ``evaluate_word_analogies``, ``save_word2vec_format``, ...),
so code written against ``gensim.models.KeyedVectors`` runs on it; gensim and SciPy are not
needed. What it computes follows gensim 4.4:

* most_similar is 3CosAdd: each key's vector is scaled to unit length, weighted +1 (positive) or
  -1 (negative; a ``(key, weight)`` pair sets the weight), averaged by the sum of the absolute
  weights and scaled to unit length; the result is its cosine with every vector among the first
  ``restrict_vocab`` (all when None), the input keys left out. Raw vectors given in place of keys
  enter the mean as they are, not unit-scaled, as in gensim.
* most_similar_cosmul is 3CosMul (Levy and Goldberg, 2014): the product of (1 + cos) / 2 over the
  positive inputs divided by the product over the negative ones plus 1e-6.
* evaluate_word_analogies reads the questions-words format and predicts, for "a b c expected",
  the first of ``most_similar(positive=[b, c], negative=[a], topn=5)`` that is not a, b or c;
  case_insensitive upper-cases the file's words and the vocabulary (the first of several keys
  with the same upper-case form stands for them all).
* evaluate_word_pairs returns (pearson, spearman, oov_ratio); the two correlations are
  ``(statistic, pvalue)`` named tuples computed here (average ranks for ties in Spearman's; the
  two-sided p-values from Student's t distribution with n - 2 degrees of freedom, as SciPy's
  pearsonr and spearmanr give them), so they do not depend on SciPy being installed.
* save_word2vec_format / load_word2vec_format write and read the word2vec C tool's formats: a
  header line "count dimensions", then per key either the text row "word v1 v2 ... vD" or the
  binary row "word " + D little-endian float32 values. The writer's bytes are gensim's (binary
  rows without a newline after the values); the reader also takes the C tool's newline there
  and a newline before a word, and ignores trailing whitespace on text rows. Names ending in
  .gz, .bz2 or .xz are (de)compressed. A truncated file raises EOFError and a malformed one
  ValueError (the truncation error is both), naming the file and the line or row.
* save / load use an .npz archive of arrays plus a JSON member (keys and attributes), read with
  ``allow_pickle=False``: loading never runs code from the file.

Where this module departs from gensim 4.4 (each a gensim defect or a gensim-only feature):

* most_similar_cosmul honours restrict_vocab (gensim ignores it), and takes int keys as keys.
* evaluate_word_analogies honours similarity_function ("most_similar" or
  "most_similar_cosmul"; gensim ignores it and always uses most_similar), and returns a 0.0 OOV
  ratio for a file with no questions (gensim divides by zero).
* add_vector / add_vectors / __setitem__ / sort_by_descending_frequency reset the cached norms
  and grow the per-key attributes with the vectors (gensim leaves them stale); a key repeated
  within one add_vectors call is added once; add_vector of a key already present returns its
  row and keeps its vector; add_vectors' extras work (gensim's loop over them fails).
* save_word2vec_format refuses keys that the formats cannot represent (containing a space or a
  newline) instead of writing a file that reads back wrong, writes the header's count as the
  number of rows it writes, and writes int keys once (gensim writes leading int keys 0..k
  twice, a Doc2Vec remnant).
* load_word2vec_format gives a key missing from the fvocab file a count of 0 with a logged
  warning (gensim raises TypeError).
* evaluate_word_pairs' correlations are the named tuples above rather than SciPy's result
  objects (same fields and tuple order).
* save / load use the format above, not gensim's pickles (neither reads the other's).
* Cosine similarities with a zero vector are NaN without a RuntimeWarning.
* Not provided: wmdistance (needs an optimal-transport package), intersect_word2vec_format and
  the deprecated init_sims / word_vec / words_closer_than aliases.
"""

import bz2
import contextlib
import gzip
import io
import itertools
import json
import logging
import lzma
import math
import os
import warnings
import zipfile
from collections import namedtuple
from numbers import Integral

import numpy as np

__all__ = ["KeyedVectors"]

logger = logging.getLogger(__name__)

_KEY_TYPES = (str, int, np.integer)
_EXTENDED_KEY_TYPES = (str, int, np.integer, np.ndarray)
_COSMUL_EPSILON = 0.000001  # gensim's: keeps a zero negative product from dividing by zero
_CHUNK = 1 << 17  # bytes read at a time from a binary word2vec file
_FIRST_ROWS_BYTES = 1 << 22  # the row buffer of a reader starts at about this size, then doubles
_FORMAT_TAG = "fastnn.text.KeyedVectors"
_FORMAT_VERSION = 1


# -- correlations, without SciPy --------------------------------------------------------------


class CorrelationResult(namedtuple("CorrelationResult", ["statistic", "pvalue"])):
    """A correlation coefficient and its two-sided p-value; a 2-tuple, like SciPy's results."""

    __slots__ = ()

    @property
    def correlation(self):
        """The coefficient under the name older SciPy releases gave it."""
        return self.statistic


def _betainc(a, b, x):
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1.

    The continued fraction I_x(a, b) = x^a (1-x)^b / (a B(a, b)) / (1 + d1 / (1 + d2 / (1 + ...))),
    d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)), d_{2m} = m (b-m) x / ((a+2m-1)(a+2m)),
    converges quickly for x < (a+1)/(a+b+2); above that I_x(a, b) = 1 - I_{1-x}(b, a).
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # Modified Lentz evaluation of 1 + d1 / (1 + d2 / (1 + ...)).
    tiny = 1e-300
    value, c, d = 1.0, 1.0, 0.0
    for j in range(1, 20000):
        m = j // 2
        if j % 2:
            coef = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            coef = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + coef * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + coef / c
        c = c if abs(c) > tiny else tiny
        delta = c * d
        value *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_front) / a / value


def _t_pvalue(r, n):
    """The two-sided p-value of a correlation r of n pairs from Student's t with n - 2 degrees of
    freedom: P(|T| >= |t|) = I_{1-r^2}((n-2)/2, 1/2), where t = r sqrt((n-2) / (1-r^2))."""
    if not math.isfinite(r) or n < 3:
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    return min(1.0, max(0.0, _betainc((n - 2) / 2.0, 0.5, (1.0 - r) * (1.0 + r))))


def _pearson_statistic(x, y):
    """Pearson's r of two float64 vectors (NaN when either is constant): the centred vectors, each
    scaled by its largest magnitude before its norm is taken (no overflow), as SciPy does."""
    xm = x - x.mean()
    ym = y - y.mean()
    xmax, ymax = np.max(np.abs(xm)), np.max(np.abs(ym))
    if not (xmax > 0.0 and ymax > 0.0 and math.isfinite(xmax) and math.isfinite(ymax)):
        return math.nan
    nx = xmax * np.linalg.norm(xm / xmax)
    ny = ymax * np.linalg.norm(ym / ymax)
    r = float(np.dot(xm / nx, ym / ny))
    return min(1.0, max(-1.0, r))


def _check_pairs(x, y, who):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{who}: x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"{who}: x and y must have length at least 2, got {x.size}")
    return x, y


def _pearson(x, y):
    """Pearson's correlation and its two-sided p-value, as scipy.stats.pearsonr."""
    x, y = _check_pairs(x, y, "pearson")
    r = _pearson_statistic(x, y)
    if x.size == 2 and math.isfinite(r):
        return CorrelationResult(math.copysign(1.0, r), 1.0)  # two points always lie on a line
    return CorrelationResult(r, _t_pvalue(r, x.size))


def _average_ranks(x):
    """1-based ranks of x, tied values sharing the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _spearman(x, y):
    """Spearman's rank correlation (average ranks for ties) and its two-sided p-value, as
    scipy.stats.spearmanr (which takes the ranks' correlation from numpy.corrcoef)."""
    x, y = _check_pairs(x, y, "spearman")
    rx, ry = _average_ranks(x), _average_ranks(y)
    if np.all(rx == rx[0]) or np.all(ry == ry[0]):
        return CorrelationResult(math.nan, math.nan)
    r = min(1.0, max(-1.0, float(np.corrcoef(rx, ry)[0, 1])))
    return CorrelationResult(r, _t_pvalue(r, x.size))


# -- files ----------------------------------------------------------------------------------


def _file_name(f):
    if hasattr(f, "read") or hasattr(f, "write"):
        return str(getattr(f, "name", "<stream>"))
    return os.fsdecode(os.fspath(f))


def _open(f, mode):
    """A binary file for a path (gzip, bz2 or xz by the name's ending) or an open binary stream
    (returned as is, not closed)."""
    if hasattr(f, "read") or hasattr(f, "write"):
        return contextlib.nullcontext(f)
    name = _file_name(f)
    lower = name.lower()
    if lower.endswith(".gz"):
        return gzip.open(name, mode)
    if lower.endswith(".bz2"):
        return bz2.open(name, mode)
    if lower.endswith(".xz"):
        return lzma.open(name, mode)
    return open(name, mode)


class _TruncatedFileError(EOFError, ValueError):
    """A word2vec file that ends before the rows its header declares: an EOFError (what gensim
    raises) and a ValueError (what a malformed file raises)."""


def _decode(raw, encoding, errors, where):
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as err:
        raise UnicodeDecodeError(err.encoding, err.object, err.start, err.end, f"{err.reason} ({where})") from None


class _Rows:
    """Vectors read so far: a buffer that grows by doubling up to the declared count, so memory
    follows the rows a file really holds, not what its header claims."""

    def __init__(self, dim, dtype, declared):
        self.dim, self.dtype, self.declared = dim, np.dtype(dtype), declared
        self.data = np.empty((0, dim), dtype=self.dtype)
        self.n = 0

    def append(self, row):
        if self.n == len(self.data):
            first = max(16, _FIRST_ROWS_BYTES // max(1, self.dim * self.dtype.itemsize))
            cap = max(self.n * 2, first) if self.declared is None else min(self.declared, max(self.n * 2, first))
            grown = np.empty((cap, self.dim), dtype=self.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n] = row
        self.n += 1

    def array(self):
        return np.ascontiguousarray(self.data[: self.n]) if self.n != len(self.data) else self.data


def _parse_header(line, name):
    try:
        text = line.decode("utf8").split()
        count, dim = (int(x) for x in text)
        if count < 0 or dim < 0:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{name}: line 1: expected the header 'count dimensions', got {line[:80]!r} "
            "(a file without one loads with no_header=True)"
        ) from None
    return count, dim


def _parse_text_row(line, lineno, name, dim, encoding, errors):
    """(word, float64 values) of a text row "word v1 ... vD" (trailing whitespace ignored)."""
    where = f"{name}: line {lineno}"
    parts = _decode(line.rstrip(), encoding, errors, where).split(" ")
    if dim is not None and len(parts) - 1 != dim:
        raise ValueError(f"{where}: expected a word and {dim} values separated by single spaces, got {len(parts) - 1}")
    try:
        values = np.array([float(p) for p in parts[1:]], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return parts[0], values


def _read_text_rows(fin, name, count, dim, encoding, errors, add):
    for i in range(count):
        line = fin.readline()
        if line == b"":
            raise _TruncatedFileError(
                f"{name}: unexpected end of input at line {i + 2}: the header declares {count} vectors, "
                f"the file holds {i}"
            )
        add(*_parse_text_row(line, i + 2, name, dim, encoding, errors))


def _read_binary_rows(fin, name, count, dim, encoding, errors, add):
    nbytes = 4 * dim
    buf, start, eof = b"", 0, False
    for i in range(count):
        while True:
            space = buf.find(b" ", start)
            if space != -1 and len(buf) - space - 1 >= nbytes:
                break
            if eof:
                raise _TruncatedFileError(
                    f"{name}: unexpected end of input in row {i + 1}: the header declares {count} vectors, "
                    f"the file holds {i}"
                )
            more = fin.read(_CHUNK)
            eof = len(more) == 0
            buf, start = buf[start:] + more, 0
        word = _decode(buf[start:space], encoding, errors, f"{name}: row {i + 1}").lstrip("\n")
        add(word, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1))
        start = space + 1 + nbytes


def _read_vocab_counts(fvocab, encoding, errors):
    name = _file_name(fvocab)
    counts = {}
    with _open(fvocab, "rb") as fin:
        for lineno, line in enumerate(fin, 1):
            parts = _decode(line, encoding, errors, f"{name}: line {lineno}").split()
            if not parts:
                continue
            try:
                word, count = parts
                counts[word] = int(count)
            except ValueError:
                raise ValueError(f"{name}: line {lineno}: expected 'word count', got {line[:80]!r}") from None
    return counts


# -- helpers ----------------------------------------------------------------------------------


def _ensure_list(value):
    """positive / negative as a list: None -> [], one key or 1-D vector -> [it], a 2-D array ->
    its rows."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    return list(value)


def _unitvec(vec):
    """vec scaled to unit L2 length, in its own dtype (a zero vector is returned as it is)."""
    vec = np.asarray(vec)
    norm = np.linalg.norm(vec) if vec.size else 0.0
    if not norm > 0.0:
        return vec
    if not np.issubdtype(vec.dtype, np.floating):
        vec = vec.astype(np.float64)
    return (vec * (1.0 / norm)).astype(vec.dtype)


def _top(dists, topn, exclude, offset=0):
    """The (offset + index, similarity) of the topn largest dists whose offset + index is not in
    exclude, largest first (the ordering gensim's matutils.argsort gives, ties included)."""
    k = topn + len(exclude)
    neg = -dists
    if k >= neg.size:
        best = np.argsort(neg)[:k]
    else:
        part = np.argpartition(neg, k)[:k]
        best = part.take(np.argsort(neg.take(part)))
    excluded = set(exclude)
    return [(int(i) + offset, float(dists[i])) for i in best if int(i) + offset not in excluded][:topn]


# -- the class --------------------------------------------------------------------------------


class KeyedVectors:
    """Vectors, one per key, with gensim 4's KeyedVectors interface.

    ``vectors`` is the (N, vector_size) array, ``index_to_key`` its keys in row order and
    ``key_to_index`` the inverse map. Per-key attributes (at least "count", which
    sort_by_descending_frequency and save_word2vec_format use) live in ``expandos``; read and
    write them with get_vecattr / set_vecattr. ``count`` pre-allocates that many rows to fill
    with add_vector.

    Code that changes ``vectors`` in place must call ``fill_norms(force=True)`` afterwards (the
    unit-length similarities use cached norms), as with gensim.
    """

    def __init__(self, vector_size, count=0, dtype=np.float32, mapfile_path=None):
        self.vector_size = int(vector_size)
        self.index_to_key = [None] * count
        self.next_index = 0
        self.key_to_index = {}
        self.vectors = np.zeros((count, self.vector_size), dtype=dtype)
        self.norms = None
        self.expandos = {}
        self.mapfile_path = mapfile_path

    def __str__(self):
        return f"{self.__class__.__name__}<vector_size={self.vector_size}, {len(self)} keys>"

    __repr__ = __str__

    # -- per-key attributes ----------------------------------------------------------------

    def allocate_vecattrs(self, attrs=None, types=None):
        """Make an array, one value per key, for each attribute name in attrs (of the matching
        type in types); with no arguments, resize the existing ones to len(self)."""
        if attrs is None:
            attrs = list(self.expandos)
            types = [self.expandos[a].dtype for a in attrs]
        size = len(self.index_to_key)
        for attr, kind in zip(attrs, types):
            if kind is int:
                kind = np.int64
            elif kind is str:
                kind = object  # not NumPy's fixed-width strings
            try:
                dtype = np.dtype(kind)
            except TypeError:
                dtype = np.dtype(object)
            old = self.expandos.get(attr)
            if old is None:
                self.expandos[attr] = np.zeros(size, dtype=dtype)
                continue
            if old.dtype != object and not np.can_cast(dtype, old.dtype, casting="same_kind"):
                raise TypeError(
                    f"Can't allocate type {dtype} for attribute {attr}, conflicts with its existing type {old.dtype}"
                )
            if len(old) != size:
                new = np.zeros(size, dtype=old.dtype)
                keep = min(len(old), size)
                new[:keep] = old[:keep]
                self.expandos[attr] = new

    def set_vecattr(self, key, attr, val):
        """Set attribute attr of key to val."""
        self.allocate_vecattrs(attrs=[attr], types=[type(val)])
        self.expandos[attr][self.get_index(key)] = val

    def get_vecattr(self, key, attr):
        """Attribute attr of key."""
        return self.expandos[attr][self.get_index(key)]

    # -- keys and vectors ------------------------------------------------------------------

    def __len__(self):
        return len(self.index_to_key)

    def __getitem__(self, key_or_keys):
        """A key's vector (1-D, read-only), or a 2-D array of the vectors of a list of keys."""
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        indices = [self.get_index(key) for key in key_or_keys]
        return self.vectors[np.asarray(indices, dtype=np.intp)]

    def get_index(self, key, default=None):
        """The row of key in ``vectors``; an int key that is not a key is taken as a row number
        when it is one. KeyError when there is no such key and no default."""
        val = self.key_to_index.get(key, -1)
        if val >= 0:
            return val
        if isinstance(key, (int, np.integer)) and 0 <= key < len(self.index_to_key):
            return int(key)
        if default is not None:
            return default
        raise KeyError(f"Key '{key}' not present")

    def has_index_for(self, key):
        """Whether key has a row (a key, or an int row number)."""
        return self.get_index(key, -1) >= 0

    def __contains__(self, key):
        return self.has_index_for(key)

    def _row(self, index, norm=False):
        if norm:
            self.fill_norms()
            with np.errstate(divide="ignore", invalid="ignore"):
                return self.vectors[index] / self.norms[index]
        return self.vectors[index]

    def get_vector(self, key, norm=False):
        """key's vector (a read-only view), scaled to unit length when norm is True."""
        result = self._row(self.get_index(key), norm)
        result.setflags(write=False)
        return result

    def get_mean_vector(self, keys, weights=None, pre_normalize=True, post_normalize=False, ignore_missing=True):
        """The weighted mean of the vectors of keys (keys, int rows or raw vectors), divided by
        the sum of the absolute weights; each key's vector unit-scaled first when pre_normalize,
        the mean unit-scaled when post_normalize. A missing key is skipped, or raises KeyError
        when ignore_missing is False."""
        if len(keys) == 0:
            raise ValueError("cannot compute mean with no input")
        if isinstance(weights, list):
            weights = np.array(weights, dtype=self.vectors.dtype)
        if weights is None:
            weights = np.ones(len(keys), dtype=self.vectors.dtype)
        if len(keys) != weights.shape[0]:
            raise ValueError("keys and weights array must have same number of elements")
        items = []
        for idx, key in enumerate(keys):
            if isinstance(key, np.ndarray):
                items.append((key, weights[idx]))
            elif self.__contains__(key):
                items.append((self.get_index(key), weights[idx]))
            elif not ignore_missing:
                raise KeyError(f"Key '{key}' not present in vocabulary")
        return self._mean(items, pre_normalize, post_normalize)

    def _mean(self, items, pre_normalize, post_normalize):
        """get_mean_vector of [(row or raw vector, weight)]."""
        mean = np.zeros(self.vector_size, self.vectors.dtype)
        total_weight = 0
        for item, weight in items:
            vec = item if isinstance(item, np.ndarray) else self._row(item, norm=pre_normalize)
            mean += weight * vec
            total_weight += abs(weight)
        if total_weight > 0:
            mean = mean / total_weight
        if post_normalize:
            out = self.vectors.dtype if np.issubdtype(self.vectors.dtype, np.floating) else np.float32
            mean = _unitvec(mean).astype(out)
        return mean

    def add_vector(self, key, vector):
        """Add one key and its vector, into the next pre-allocated row when there is one (else
        growing every array by one row, which warns: add in batches with add_vectors instead).
        Returns its row. A key already present keeps its vector, and its row is returned."""
        if key in self.key_to_index:
            return self.key_to_index[key]
        target = self.next_index
        if target >= len(self) or self.index_to_key[target] is not None:
            target = len(self)
            warnings.warn(
                "Adding single vectors to a KeyedVectors which grows by one each time can be costly. "
                "Consider adding in batches or preallocating to the required size.",
                UserWarning,
                stacklevel=2,
            )
            self.add_vectors([key], [vector])
            self.next_index = target + 1
        else:
            self.index_to_key[target] = key
            self.key_to_index[key] = target
            self.vectors[target] = vector
            self.next_index += 1
            self.norms = None
        return target

    def add_vectors(self, keys, weights, extras=None, replace=False):
        """Append keys and their vectors (a 2-D array, or a list of 1-D ones). A key already
        present keeps its vector unless replace is True; a key repeated in keys is added once
        (with its last vector when replace, else its first). extras: {attribute: values, one per
        key} set for the keys added (and, when replace, for those present)."""
        if isinstance(keys, _KEY_TYPES):
            keys = [keys]
            weights = np.asarray(weights).reshape(1, -1)
        keys = list(keys)
        weights = np.asarray(weights)
        if not keys and weights.size == 0:
            weights = weights.reshape(0, self.vector_size)
        if weights.ndim != 2 or weights.shape != (len(keys), self.vector_size):
            raise ValueError(
                f"add_vectors: expected weights of shape ({len(keys)}, {self.vector_size}), got {weights.shape}"
            )
        extras = {attr: np.asarray(values) for attr, values in (extras or {}).items()}
        for attr, values in extras.items():
            if len(values) != len(keys):
                raise ValueError(f"add_vectors: extras[{attr!r}] has {len(values)} values for {len(keys)} keys")
        self.allocate_vecattrs(list(extras), [values.dtype for values in extras.values()])

        first = {}  # the keys not present yet: their first position in keys
        for pos, key in enumerate(keys):
            if key not in self.key_to_index and key not in first:
                first[key] = pos
        rows = list(first.values())
        old_len = len(self.index_to_key)
        for pos in rows:
            self.key_to_index[keys[pos]] = len(self.index_to_key)
            self.index_to_key.append(keys[pos])
        self.vectors = np.concatenate([self.vectors, weights[rows].astype(self.vectors.dtype)])
        self.allocate_vecattrs()
        for attr, values in extras.items():
            self.expandos[attr][old_len:] = values[rows]
        if replace:
            for pos, key in enumerate(keys):  # in order: a key's last vector wins
                index = self.key_to_index[key]
                self.vectors[index] = weights[pos]
                for attr, values in extras.items():
                    self.expandos[attr][index] = values[pos]
        self.norms = None

    def __setitem__(self, keys, weights):
        """kv[key] = vector or kv[[k1, k2]] = 2-D array: add_vectors with replace=True."""
        if not isinstance(keys, list):
            keys = [keys]
            weights = np.asarray(weights).reshape(1, -1)
        self.add_vectors(keys, weights, replace=True)

    def resize_vectors(self, seed=0):
        """Make ``vectors`` one row per key, keeping the rows there are and filling new ones
        uniformly in [-1, 1) / vector_size from numpy's default_rng(seed), as gensim does."""
        shape = (len(self.index_to_key), self.vector_size)
        if self.vectors.shape != shape:
            rng = np.random.default_rng(seed=seed)
            dtype = self.vectors.dtype if self.vectors.dtype in (np.float32, np.float64) else np.float32
            new = rng.random(shape, dtype=dtype)
            new *= 2.0
            new -= 1.0
            new /= self.vector_size
            rows, cols = self.vectors.shape
            new[:rows, :cols] = self.vectors[: shape[0], : shape[1]]
            self.vectors = new
        self.allocate_vecattrs()
        self.norms = None

    def vectors_for_all(self, keys, allow_inference=True, copy_vecattrs=False):
        """A new KeyedVectors of the given keys that have vectors here (each once, in order)."""
        present = [key for key in dict.fromkeys(keys) if (key in self if allow_inference else self.has_index_for(key))]
        kv = self.__class__(self.vector_size, 0, dtype=self.vectors.dtype)
        if present:
            kv.add_vectors(present, self[present])
        if copy_vecattrs:
            rows = [self.get_index(key) for key in present]
            for attr, values in self.expandos.items():
                kv.expandos[attr] = values[rows].copy()
        return kv

    # -- norms -----------------------------------------------------------------------------

    def fill_norms(self, force=False):
        """Compute the cached row norms (``norms``) if missing, or again when force."""
        if self.norms is None or force:
            self.norms = np.linalg.norm(self.vectors, axis=1)

    def get_normed_vectors(self):
        """All vectors scaled to unit length, a new (N, vector_size) array."""
        self.fill_norms()
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.vectors / self.norms[..., np.newaxis]

    def unit_normalize_all(self):
        """Scale every vector to unit length in place."""
        self.fill_norms()
        with np.errstate(divide="ignore", invalid="ignore"):
            self.vectors /= self.norms[..., np.newaxis]
        self.norms = np.ones((len(self.vectors),), dtype=self.norms.dtype)

    def sort_by_descending_frequency(self):
        """Reorder keys (and vectors and attributes) by descending "count"; equal counts end up in
        the reverse of their order, as in gensim."""
        if not len(self):
            return
        if "count" not in self.expandos:
            raise KeyError("sort_by_descending_frequency needs the 'count' attribute (set_vecattr(key, 'count', n))")
        counts = np.asarray(self.expandos["count"], dtype=np.int64)
        order = np.lexsort((-np.arange(len(counts)), -counts))
        self.index_to_key = [self.index_to_key[i] for i in order]
        self.allocate_vecattrs()
        for attr in self.expandos:
            self.expandos[attr] = self.expandos[attr][order]
        if len(self.vectors):
            logger.warning("sorting after vectors have been allocated is expensive & error-prone")
            self.vectors = self.vectors[order]
        self.key_to_index = {key: i for i, key in enumerate(self.index_to_key)}
        self.norms = None

    # -- similarity queries ----------------------------------------------------------------

    def _similarities(self, mean, start=0, end=None):
        self.fill_norms()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.dot(self.vectors[start:end], mean) / self.norms[start:end]

    def most_similar(
        self, positive=None, negative=None, topn=10, clip_start=0, clip_end=None, restrict_vocab=None, indexer=None
    ):
        """The topn keys most similar (3CosAdd) to the positive inputs and least to the negative
        ones, as [(key, cosine)], largest first, the input keys left out; with topn None, the
        array of every row's cosine (within restrict_vocab). Inputs: keys, int rows, vectors, or
        (input, weight) pairs; one key or vector alone is allowed. restrict_vocab=n looks at
        the first n rows only (overriding clip_start / clip_end). An unknown key raises
        KeyError."""
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive = _ensure_list(positive)
        negative = _ensure_list(negative)
        self.fill_norms()
        clip_end = clip_end or len(self.vectors)
        if restrict_vocab:
            clip_start, clip_end = 0, restrict_vocab

        keys = []
        weight = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))
        for idx, item in enumerate(positive + negative):
            if isinstance(item, _EXTENDED_KEY_TYPES):
                keys.append(item)
            else:
                keys.append(item[0])
                weight[idx] = item[1]
        mean = self.get_mean_vector(keys, weight, pre_normalize=True, post_normalize=True, ignore_missing=False)
        exclude = [self.get_index(key) for key in keys if isinstance(key, _KEY_TYPES) and self.has_index_for(key)]

        if indexer is not None and isinstance(topn, int):
            return indexer.most_similar(mean, topn)
        dists = self._similarities(mean, clip_start, clip_end)
        if not topn:
            return dists
        return [(self.index_to_key[i], sim) for i, sim in _top(dists, topn, exclude, offset=clip_start)]

    def similar_by_key(self, key, topn=10, restrict_vocab=None):
        """most_similar(positive=[key], ...)."""
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    similar_by_word = similar_by_key

    def similar_by_vector(self, vector, topn=10, restrict_vocab=None):
        """The keys most similar to a vector: most_similar(positive=[vector], ...)."""
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def _cosmul_scores(self, positive, negative, end):
        """The 3CosMul score of every row below end; positive / negative: lists of unit-length (or
        raw) query vectors."""
        self.fill_norms()
        vecs, norms = self.vectors[:end], self.norms[:end]

        def shifted(term):
            with np.errstate(divide="ignore", invalid="ignore"):
                return (1 + np.dot(vecs, term) / norms) / 2

        pos = [shifted(term) for term in positive]
        neg = [shifted(term) for term in negative]
        return np.prod(pos, axis=0) / (np.prod(neg, axis=0) + _COSMUL_EPSILON)

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The topn keys by 3CosMul: prod over positive of (1 + cos) / 2 divided by (prod over
        negative of (1 + cos) / 2 + 1e-6), keys' vectors unit-scaled, raw vectors as given; the
        input keys left out; topn None: the array of every row's score. restrict_vocab=n looks
        at the first n rows only."""
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive = _ensure_list(positive)
        negative = _ensure_list(negative)
        exclude = {
            self.get_index(w) for w in positive + negative if isinstance(w, _KEY_TYPES) and self.has_index_for(w)
        }
        positive = [self.get_vector(w, norm=True) if isinstance(w, _KEY_TYPES) else w for w in positive]
        negative = [self.get_vector(w, norm=True) if isinstance(w, _KEY_TYPES) else w for w in negative]
        if not positive:
            raise ValueError("cannot compute similarity with no input")
        dists = self._cosmul_scores(positive, negative, restrict_vocab or None)
        if not topn:
            return dists
        return [(self.index_to_key[i], sim) for i, sim in _top(dists, topn, sorted(exclude))]

    def rank_by_centrality(self, words, use_norm=True):
        """[(cosine to the centroid, word)] of the words present, largest first; the centroid is
        the unit-scaled mean of their (unit-scaled, when use_norm) vectors. Missing words are
        skipped with a logged warning."""
        self.fill_norms()
        used = [word for word in words if word in self]
        if len(used) != len(words):
            logger.warning(
                "vectors for words %s are not present in the model, ignoring these words", set(words) - set(used)
            )
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vectors = np.vstack([self.get_vector(word, norm=use_norm) for word in used]).astype(np.float32)
        mean = self.get_mean_vector(vectors, post_normalize=True)
        dists = np.dot(vectors, mean)
        return sorted(zip(dists, used), reverse=True)

    def doesnt_match(self, words):
        """The word of words farthest from the centroid of them all (rank_by_centrality's last);
        words without a vector are ignored with a logged warning."""
        return self.rank_by_centrality(words)[-1][1]

    def most_similar_to_given(self, key1, keys_list):
        """The key of keys_list most similar to key1."""
        return keys_list[int(np.argmax([self.similarity(key1, key) for key in keys_list]))]

    @staticmethod
    def cosine_similarities(vector_1, vectors_all):
        """The cosine of vector_1 with each row of vectors_all."""
        norm = np.linalg.norm(vector_1)
        all_norms = np.linalg.norm(vectors_all, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.dot(vectors_all, vector_1) / (norm * all_norms)

    def distances(self, word_or_vector, other_words=()):
        """1 - cosine between a key (or vector) and each of other_words (every key when empty)."""
        if isinstance(word_or_vector, _KEY_TYPES):
            vector = self.get_vector(word_or_vector)
        else:
            vector = word_or_vector
        if other_words is None or len(other_words) == 0:
            others = self.vectors
        else:
            others = self.vectors[[self.get_index(word) for word in other_words]]
        return 1 - self.cosine_similarities(vector, others)

    def distance(self, w1, w2):
        """1 - similarity(w1, w2)."""
        return 1 - self.similarity(w1, w2)

    def similarity(self, w1, w2):
        """The cosine between the vectors of two keys."""
        return np.dot(_unitvec(self[w1]), _unitvec(self[w2]))

    def n_similarity(self, ws1, ws2):
        """The cosine between the means of the vectors of two lists of keys."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        mean1 = self.get_mean_vector(ws1, pre_normalize=False)
        mean2 = self.get_mean_vector(ws2, pre_normalize=False)
        return np.dot(_unitvec(mean1), _unitvec(mean2))

    def closer_than(self, key1, key2):
        """The keys closer to key1 than key2 is (key1 itself left out)."""
        all_distances = self.distances(key1)
        i1, i2 = self.get_index(key1), self.get_index(key2)
        closer = np.where(all_distances < all_distances[i2])[0]
        return [self.index_to_key[i] for i in closer if i != i1]

    def rank(self, key1, key2):
        """1 + the number of keys closer to key1 than key2 is."""
        return len(self.closer_than(key1, key2)) + 1

    def relative_cosine_similarity(self, wa, wb, topn=10):
        """similarity(wa, wb) over the sum of the similarities of wa's topn nearest keys."""
        sims = self.similar_by_word(wa, topn)
        if not sims:
            raise ValueError("Cannot calculate relative cosine similarity without any similar words.")
        return float(self.similarity(wa, wb)) / sum(sim for _, sim in sims)

    # -- evaluation ------------------------------------------------------------------------

    def _ok_vocab(self, restrict_vocab, case_insensitive):
        """{key (upper-cased when case_insensitive): row} over the first restrict_vocab keys; of
        several keys with one upper-case form the first wins."""
        ok = {}
        for key in reversed(self.index_to_key[:restrict_vocab]):
            if key is None:
                continue
            if case_insensitive:
                if not isinstance(key, str):
                    continue
                ok[key.upper()] = self.get_index(key)
            else:
                ok[key] = self.get_index(key)
        return ok

    @staticmethod
    def _log_section(section):
        correct, incorrect = len(section["correct"]), len(section["incorrect"])
        if correct + incorrect == 0:
            return 0.0
        score = correct / (correct + incorrect)
        logger.info("%s: %.1f%% (%i/%i)", section["section"], 100.0 * score, correct, correct + incorrect)
        return score

    def _predict_analogy(self, a, b, c, restrict_vocab, similarity_function):
        """The top 5 [(key, score)] for "a is to b as c is to ?" (rows a, b, c), a, b, c left out."""
        if similarity_function == "most_similar":
            weights = np.array([1.0, 1.0, -1.0])
            mean = self._mean([(b, weights[0]), (c, weights[1]), (a, weights[2])], True, True)
            dists = self._similarities(mean, 0, restrict_vocab or None)
        else:
            pos = [self._row(b, norm=True), self._row(c, norm=True)]
            dists = self._cosmul_scores(pos, [self._row(a, norm=True)], restrict_vocab or None)
        return [(self.index_to_key[i], sim) for i, sim in _top(dists, 5, [b, c, a])]

    def evaluate_word_analogies(
        self,
        analogies,
        restrict_vocab=300000,
        case_insensitive=True,
        dummy4unknown=False,
        similarity_function="most_similar",
    ):
        """Accuracy on an analogy file in the questions-words format (": section" lines, then
        lines "a b c expected"; other lines are skipped with a logged note).

        A question is answered by the first of the 5 keys most similar to b + c - a (among the
        first restrict_vocab keys; similarity_function "most_similar" = 3CosAdd or
        "most_similar_cosmul" = 3CosMul) that is not a, b or c. A question with a word outside
        the first restrict_vocab keys is skipped (counted, logged), or counted wrong when
        dummy4unknown. case_insensitive upper-cases the file's words and the keys.

        Returns (score, sections): the overall accuracy, and per section a dict {'section': name,
        'correct': [(a, b, c, expected)], 'incorrect': [...]}, the last one 'Total accuracy'.
        """
        if similarity_function not in ("most_similar", "most_similar_cosmul"):
            raise ValueError(
                f"similarity_function must be 'most_similar' or 'most_similar_cosmul', got {similarity_function!r}"
            )
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        name = _file_name(analogies)
        logger.info("Evaluating word analogies for top %s words in the model on %s", restrict_vocab, name)
        sections, section = [], None
        oov = quadruplets = 0
        with _open(analogies, "rb") as fin:
            for lineno, raw in enumerate(fin, 1):
                line = _decode(raw, "utf8", "strict", f"{name}: line {lineno}")
                if line.startswith(": "):
                    if section:
                        sections.append(section)
                        self._log_section(section)
                    section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
                    continue
                if not section:
                    raise ValueError(f"{name}: line {lineno}: missing section header (': name') before it")
                words = line.split()
                if len(words) != 4:
                    logger.info("Skipping invalid line %i in %s", lineno, name)
                    continue
                if case_insensitive:
                    words = [word.upper() for word in words]
                a, b, c, expected = words
                quadruplets += 1
                if a not in ok_vocab or b not in ok_vocab or c not in ok_vocab or expected not in ok_vocab:
                    oov += 1
                    if dummy4unknown:
                        logger.debug("Zero accuracy for line %i with OOV words: %s", lineno, line.strip())
                        section["incorrect"].append((a, b, c, expected))
                    else:
                        logger.debug("Skipping line %i with OOV words: %s", lineno, line.strip())
                    continue
                ignore = {a, b, c}
                predicted = None
                sims = self._predict_analogy(ok_vocab[a], ok_vocab[b], ok_vocab[c], restrict_vocab, similarity_function)
                for key, _ in sims:
                    predicted = key.upper() if case_insensitive else key
                    if predicted in ok_vocab and predicted not in ignore:
                        if predicted != expected:
                            logger.debug("%s: expected %s, predicted %s", line.strip(), expected, predicted)
                        break
                if predicted == expected:
                    section["correct"].append((a, b, c, expected))
                else:
                    section["incorrect"].append((a, b, c, expected))
        if section:
            sections.append(section)
            self._log_section(section)
        total = {
            "section": "Total accuracy",
            "correct": list(itertools.chain.from_iterable(s["correct"] for s in sections)),
            "incorrect": list(itertools.chain.from_iterable(s["incorrect"] for s in sections)),
        }
        oov_ratio = 100.0 * oov / quadruplets if quadruplets else 0.0
        logger.info("Quadruplets with out-of-vocabulary words: %.1f%%", oov_ratio)
        if not dummy4unknown:
            logger.info(
                'NB: analogies containing OOV words were skipped from evaluation! To change this behavior, use "dummy4unknown=True"'
            )
        score = self._log_section(total)
        sections.append(total)
        return score, sections

    def evaluate_word_pairs(
        self, pairs, delimiter="\t", encoding="utf8", restrict_vocab=300000, case_insensitive=True, dummy4unknown=False
    ):
        """Correlation of the cosine similarities with human judgements in a file of lines
        "word1<delimiter>word2<delimiter>score" ('#' lines are comments; malformed lines are
        skipped with a logged note).

        A pair with a word outside the first restrict_vocab keys is skipped (counted, logged), or
        given similarity 0 when dummy4unknown. case_insensitive upper-cases words and keys.
        Returns (pearson, spearman, oov_ratio): (statistic, pvalue) named tuples and the percentage
        of pairs with an unknown word.
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        name = _file_name(pairs)
        gold, model = [], []
        oov = 0
        with _open(pairs, "rb") as raw:
            fin = io.TextIOWrapper(raw, encoding=encoding)
            try:
                for lineno, line in enumerate(fin, 1):
                    if not line or line.startswith("#"):
                        continue
                    try:
                        parts = line.split(delimiter)
                        if case_insensitive:
                            parts = [part.upper() for part in parts]
                        a, b, sim = parts
                        sim = float(sim)
                    except (ValueError, TypeError):
                        logger.info("Skipping invalid line %d in %s", lineno, name)
                        continue
                    if a not in ok_vocab or b not in ok_vocab:
                        oov += 1
                        if dummy4unknown:
                            logger.debug("Zero similarity for line %d with OOV words: %s", lineno, line.strip())
                            model.append(0.0)
                            gold.append(sim)
                        else:
                            logger.info("Skipping line %d with OOV words: %s", lineno, line.strip())
                        continue
                    gold.append(sim)
                    model.append(
                        float(np.dot(_unitvec(self.vectors[ok_vocab[a]]), _unitvec(self.vectors[ok_vocab[b]])))
                    )
            finally:
                fin.detach()
        if not gold:
            raise ValueError(
                f"No valid similarity judgements found in {name}: either invalid format or all are out-of-vocabulary in {self}"
            )
        spearman = _spearman(gold, model)
        pearson = _pearson(gold, model)
        oov_ratio = 100.0 * oov / len(gold) if dummy4unknown else 100.0 * oov / (len(gold) + oov)
        logger.info("Pearson correlation coefficient against %s: %.4f", name, pearson[0])
        logger.info("Spearman rank-order correlation coefficient against %s: %.4f", name, spearman[0])
        logger.info("Pairs with unknown words ratio: %.1f%%", oov_ratio)
        return pearson, spearman, oov_ratio

    # -- the word2vec C formats ------------------------------------------------------------

    def save_word2vec_format(
        self,
        fname,
        fvocab=None,
        binary=False,
        total_vec=None,
        write_header=True,
        prefix="",
        append=False,
        sort_attr="count",
    ):
        """Write the vectors in the word2vec C tool's text (binary=False) or binary format, keys
        in descending order of attribute sort_attr (the order of index_to_key when there is no
        such attribute), each prefixed with prefix; fvocab: also write "key count" lines there.
        total_vec overrides the header's count; write_header=False leaves the header out (GloVe's
        text format); append adds to the files."""
        present = [(key, i) for i, key in enumerate(self.index_to_key) if key is not None]
        if sort_attr in self.expandos:
            values = self.expandos[sort_attr]
            ordered = sorted(self.key_to_index, key=lambda k: values[self.key_to_index[k]], reverse=True)
        else:
            if fvocab is not None:
                raise ValueError(f"Cannot store vocabulary with '{sort_attr}' because that attribute does not exist")
            logger.warning("attribute %s not present in %s; will store in internal index_to_key order", sort_attr, self)
            ordered = [key for key, _ in present]
        for key in itertools.chain([prefix], ordered):
            text = str(key)
            if " " in text or "\n" in text:
                raise ValueError(
                    f"save_word2vec_format: the key {text!r} holds a space or a newline, which the format cannot hold"
                )
        if total_vec is None:
            total_vec = len(ordered)
        mode = "ab" if append else "wb"
        if fvocab is not None:
            with _open(fvocab, mode) as vout:
                for key in ordered:
                    vout.write(f"{prefix}{key} {self.get_vecattr(key, sort_attr)}\n".encode("utf8"))
        logger.info("storing %sx%s projection weights into %s", total_vec, self.vector_size, _file_name(fname))
        with _open(fname, mode) as fout:
            if write_header:
                fout.write(f"{total_vec} {self.vector_size}\n".encode("utf8"))
            for key in ordered:
                row = self.vectors[self.key_to_index[key]]
                if binary:
                    fout.write(f"{prefix}{key} ".encode("utf8") + row.astype("<f4").tobytes())
                else:
                    fout.write(f"{prefix}{key} {' '.join(str(v) for v in row)}\n".encode("utf8"))

    @classmethod
    def load_word2vec_format(
        cls,
        fname,
        fvocab=None,
        binary=False,
        encoding="utf8",
        unicode_errors="strict",
        limit=None,
        datatype=np.float32,
        no_header=False,
    ):
        """Read a file in the word2vec C tool's text or binary format (see the module's notes).

        fvocab: a "word count" file (the C tool's -save-vocab) for the "count" attribute; without
        it the counts are made up, descending (N, N-1, ..., 1). limit: read the first limit rows
        only. datatype: the vectors' dtype. no_header: a text file without the header line (GloVe).
        A repeated word keeps its first vector (logged). unicode_errors is passed to the decoder.
        """
        counts = None
        if fvocab is not None:
            counts = _read_vocab_counts(fvocab, encoding, unicode_errors)
        name = _file_name(fname)
        logger.info("loading projection weights from %s", name)
        keys, key_to_index, holder = [], {}, {}

        def add(word, values):
            if word in key_to_index:
                logger.warning("duplicate word '%s' in word2vec file, ignoring all but first", word)
                return
            if "rows" not in holder:
                holder["rows"] = _Rows(len(values), datatype, declared)
            key_to_index[word] = len(keys)
            keys.append(word)
            holder["rows"].append(values)

        with _open(fname, "rb") as fin:
            if no_header:
                if binary:
                    raise NotImplementedError("no_header only available for text-format files")
                declared, dim, lineno = None, None, 0
                while limit is None or limit <= 0 or lineno < limit:
                    line = fin.readline()
                    if line == b"":
                        break
                    lineno += 1
                    word, values = _parse_text_row(line, lineno, name, dim, encoding, unicode_errors)
                    dim = len(values)
                    add(word, values)
                count = lineno
                if dim is None:
                    raise ValueError(f"{name}: no vectors (an empty file)")
            else:
                count, dim = _parse_header(fin.readline(), name)
                if limit:
                    count = min(count, limit)
                declared = count
                reader = _read_binary_rows if binary else _read_text_rows
                reader(fin, name, count, dim, encoding, unicode_errors, add)

        kv = cls(dim, 0, dtype=datatype)
        rows = holder["rows"].array() if "rows" in holder else np.zeros((0, dim), dtype=datatype)
        if len(keys) != count:
            logger.info("duplicate words detected, shrinking matrix size from %i to %i", count, len(keys))
        kv.vectors = rows
        kv.index_to_key = keys
        kv.key_to_index = key_to_index
        kv.next_index = len(keys)
        if counts is None:
            word_counts = count - np.arange(len(keys), dtype=np.int64)
        else:
            missing = [word for word in keys if word not in counts]
            if missing:
                logger.warning(
                    "vocabulary file is incomplete: %s missing (count 0)", ", ".join(repr(w) for w in missing[:10])
                )
            word_counts = np.array([counts.get(word, 0) for word in keys], dtype=np.int64)
        kv.expandos = {"count": word_counts}
        return kv

    # -- the native format -----------------------------------------------------------------

    def save(self, fname):
        """Write the vectors, keys and per-key attributes to fname: a zip archive (.npz) of .npy
        arrays and a JSON member "meta.json" (keys and attributes), readable with
        numpy.load(..., allow_pickle=False). Keys must be str or int; attributes of object
        dtype must hold JSON values (str, int, float, bool, None)."""
        keys = []
        for key in self.index_to_key:
            if key is None or isinstance(key, str):
                keys.append(key)
            elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
                keys.append(int(key))
            else:
                raise TypeError(f"save: keys must be str or int to be stored, got {type(key).__name__} {key!r}")
        arrays = {"vectors": np.ascontiguousarray(self.vectors)}
        attrs = []
        for n, (attr, values) in enumerate(self.expandos.items()):
            if values.dtype == object:
                attrs.append({"name": attr, "values": [v.item() if isinstance(v, np.generic) else v for v in values]})
            else:
                arrays[f"attr{n}"] = np.ascontiguousarray(values)
                attrs.append({"name": attr, "member": f"attr{n}"})
        meta = {
            "format": _FORMAT_TAG,
            "version": _FORMAT_VERSION,
            "vector_size": self.vector_size,
            "next_index": int(self.next_index),
            "index_to_key": keys,
            "attrs": attrs,
        }
        text = json.dumps(meta, ensure_ascii=False, allow_nan=False)
        with zipfile.ZipFile(fname, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for member, array in arrays.items():
                with zf.open(member + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, array, allow_pickle=False)
            zf.writestr("meta.json", text.encode("utf8"))

    @classmethod
    def load(cls, fname):
        """Read what save wrote (no pickle: nothing in the file is run)."""
        name = _file_name(fname)
        try:
            with np.load(fname, allow_pickle=False) as npz:
                if "meta.json" not in npz.files or "vectors" not in npz.files:
                    raise ValueError(f"{name}: not a saved {_FORMAT_TAG} (no meta.json or vectors member)")
                meta = json.loads(bytes(npz["meta.json"]).decode("utf8"))
                if not isinstance(meta, dict) or meta.get("format") != _FORMAT_TAG:
                    raise ValueError(f"{name}: not a saved {_FORMAT_TAG}")
                if meta.get("version") != _FORMAT_VERSION:
                    raise ValueError(
                        f"{name}: format version {meta.get('version')!r}, this fastnn reads {_FORMAT_VERSION}"
                    )
                vectors = npz["vectors"]
                expandos = {}
                for entry in meta["attrs"]:
                    if "member" in entry:
                        expandos[entry["name"]] = npz[entry["member"]]
                    else:
                        values = np.empty(len(entry["values"]), dtype=object)
                        values[:] = entry["values"]
                        expandos[entry["name"]] = values
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as err:
            raise ValueError(f"{name}: damaged {_FORMAT_TAG} file ({err})") from None
        keys = meta["index_to_key"]
        vector_size = meta["vector_size"]
        if not isinstance(keys, list) or any(k is not None and not isinstance(k, (str, int)) for k in keys):
            raise ValueError(f"{name}: index_to_key must be a list of str or int")
        if vectors.ndim != 2 or vectors.shape != (len(keys), vector_size):
            raise ValueError(f"{name}: vectors of shape {vectors.shape}, expected ({len(keys)}, {vector_size})")
        for attr, values in expandos.items():
            if values.shape != (len(keys),):
                raise ValueError(f"{name}: attribute {attr!r} has shape {values.shape}, expected ({len(keys)},)")
        key_to_index = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            if key in key_to_index:
                raise ValueError(f"{name}: the key {key!r} appears twice")
            key_to_index[key] = i
        kv = cls(vector_size, 0, dtype=vectors.dtype)
        kv.vectors = vectors
        kv.index_to_key = list(keys)
        kv.key_to_index = key_to_index
        kv.next_index = int(meta["next_index"])
        kv.expandos = expandos
        return kv
