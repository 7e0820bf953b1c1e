"""fastnn.text.Word2Vec: word2vec (skip-gram and CBOW; negative sampling and hierarchical
softmax) with gensim 4's names, defaults and behaviour, trained by fastnn's C++ kernels
(fastnn.ops.word2vec_train / word2vec_train_file: SIMD on every ISA, Hogwild threads).

    from fastnn.text import Word2Vec
    model = Word2Vec(sentences, vector_size=100, window=5, min_count=1, workers=4)
    model.wv.most_similar("king")

What differs from gensim, on purpose:
- A sentence given as one string is split on whitespace (with a warning, once): gensim would
  read it as a sequence of characters. Tokens must be strings.
- The sigmoid is computed exactly; gensim looks it up in a table over [-6, 6] and skips the
  updates outside it.
- save / load write an .npz with a JSON header, never a pickle.
- workers=1 with a fixed seed gives the same vectors on every run (gensim's does not promise
  it); more workers update the weights without locks, as gensim and word2vec.c do.
"""

import bz2
import gzip
import inspect
import json
import logging
import numbers
import os
import time
import types
import warnings
from collections.abc import Iterable, Iterator

import numpy as np

from .. import ops
from ..train import _progress
from . import vocab as _vocab
from .keyedvectors import KeyedVectors

__all__ = ["Word2Vec", "LineSentence", "MAX_WORDS_IN_BATCH"]

logger = logging.getLogger(__name__)

# a job of the kernels: at most this many words (gensim's batch_words default, and its limit on
# a sentence's length: longer sentences are cut into pieces of this many words)
MAX_WORDS_IN_BATCH = 10000
# words per kernel call when training from an iterable (Python encodes the next batch between
# calls; the kernel's threads share the jobs of one call)
_CALL_WORDS = 1 << 20
# a list or tuple corpus of at most this many words is encoded once per train() call, not once
# per epoch (4 bytes a word)
_CACHE_WORDS = 1 << 24

_FORMAT = "fastnn.text.Word2Vec"
_FORMAT_VERSION = 1


class LineSentence:
    """The sentences of a text file, one per line, tokens split on whitespace (gensim's
    LineSentence; lines longer than max_sentence_length words are cut into pieces). The file may
    be gzip- or bz2-compressed (by its name). Restartable: each iteration reads the file again."""

    def __init__(self, source, max_sentence_length=MAX_WORDS_IN_BATCH, limit=None):
        self.source = os.fspath(source)
        self.max_sentence_length = int(max_sentence_length)
        self.limit = limit

    def __iter__(self):
        opener = gzip.open if self.source.endswith(".gz") else bz2.open if self.source.endswith(".bz2") else open
        with opener(self.source, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f):
                if self.limit is not None and n >= self.limit:
                    break
                words = line.split()
                for i in range(0, len(words), self.max_sentence_length):
                    yield words[i : i + self.max_sentence_length]


def _check_positive_int(name, v, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"Word2Vec: {name} must be an int, got {type(v).__name__}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"Word2Vec: {name} must be {'>= 0' if allow_zero else 'positive'}, got {v}")
    return int(v)


def _check_float(name, v, lo=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
        raise (TypeError if not isinstance(v, numbers.Real) else ValueError)(
            f"Word2Vec: {name} must be a finite number, got {v!r}"
        )
    if lo is not None and v < lo:
        raise ValueError(f"Word2Vec: {name} must be >= {lo}, got {v}")
    return float(v)


class _Sentences:
    """An iterable corpus checked and normalised one sentence at a time: token lists pass, a
    string is split on whitespace (warned about once per owner: a model warns once, not once per
    pass), anything else is a TypeError."""

    def __init__(self, corpus, owner=None):
        if isinstance(corpus, (str, bytes)):
            raise TypeError(
                "Word2Vec: sentences must be an iterable of sentences (lists of str tokens), got a single "
                f"{type(corpus).__name__}; for a text file use corpus_file= or LineSentence"
            )
        if not isinstance(corpus, Iterable):
            raise TypeError(
                f"Word2Vec: sentences must be an iterable of lists of str tokens, got {type(corpus).__name__}"
            )
        self.corpus = corpus
        self.owner = owner if owner is not None else types.SimpleNamespace()

    def __iter__(self):
        for n, s in enumerate(self.corpus):
            if isinstance(s, str):
                if not getattr(self.owner, "_warned_str", False):
                    warnings.warn(
                        "Word2Vec: a sentence is a str; it was split on whitespace into words (gensim would "
                        "treat each character as a word). Pass lists of tokens to silence this.",
                        UserWarning,
                        stacklevel=4,
                    )
                    self.owner._warned_str = True
                yield s.split()
                continue
            if isinstance(s, (list, tuple)):
                for t in s:
                    if not isinstance(t, str):
                        raise TypeError(
                            f"Word2Vec: sentence {n} holds a {type(t).__name__} token ({t!r}); tokens must be str"
                        )
                yield s
                continue
            raise TypeError(
                f"Word2Vec: sentence {n} is a {type(s).__name__}; each sentence must be a list of str tokens "
                "(or a str, split on whitespace)"
            )


def _is_one_shot(corpus):
    return isinstance(corpus, (Iterator, types.GeneratorType))


class Word2Vec:
    """word2vec with gensim 4's parameters and defaults (see gensim.models.Word2Vec). The
    vectors are model.wv (a KeyedVectors); the output weights model.syn1neg (negative sampling)
    and model.syn1 (hierarchical softmax)."""

    def __init__(
        self,
        sentences=None,
        corpus_file=None,
        vector_size=100,
        alpha=0.025,
        window=5,
        min_count=5,
        max_vocab_size=None,
        sample=1e-3,
        seed=1,
        workers=3,
        min_alpha=0.0001,
        sg=0,
        hs=0,
        negative=5,
        ns_exponent=0.75,
        cbow_mean=1,
        hashfxn=hash,
        epochs=5,
        null_word=0,
        trim_rule=None,
        sorted_vocab=1,
        batch_words=MAX_WORDS_IN_BATCH,
        compute_loss=False,
        callbacks=(),
        comment=None,
        max_final_vocab=None,
        shrink_windows=True,
    ):
        self.vector_size = _check_positive_int("vector_size", vector_size)
        self.alpha = _check_float("alpha", alpha, 0.0)
        self.min_alpha = _check_float("min_alpha", min_alpha, 0.0)
        self.window = _check_positive_int("window", window)
        self.min_count = _check_positive_int("min_count", min_count, allow_zero=True)
        self.max_vocab_size = None if max_vocab_size is None else _check_positive_int("max_vocab_size", max_vocab_size)
        self.sample = _check_float("sample", sample, 0.0)
        self.seed = int(seed)
        self.workers = _check_positive_int("workers", workers)
        self.sg = int(bool(sg))
        self.hs = int(bool(hs))
        self.negative = _check_positive_int("negative", negative, allow_zero=True)
        self.ns_exponent = _check_float("ns_exponent", ns_exponent)
        self.cbow_mean = int(bool(cbow_mean))
        self.hashfxn = hashfxn
        self.epochs = _check_positive_int("epochs", epochs)
        self.null_word = null_word
        self.sorted_vocab = sorted_vocab
        self.batch_words = _check_positive_int("batch_words", batch_words)
        self.compute_loss = bool(compute_loss)
        self.callbacks = tuple(callbacks)
        self.comment = comment
        self.max_final_vocab = max_final_vocab
        self.shrink_windows = bool(shrink_windows)
        self.layer1_size = self.vector_size
        self.wv = KeyedVectors(self.vector_size)
        self.syn1neg = np.zeros((0, self.vector_size), np.float32)
        self.syn1 = np.zeros((0, self.vector_size), np.float32)
        self.raw_vocab = None
        self.corpus_count = 0
        self.corpus_total_words = 0
        self.effective_min_count = self.min_count
        self.cum_table = np.zeros(0, np.uint32)
        self._sample_int = np.zeros(0, np.uint32)
        self._counts = np.zeros(0, np.int64)
        self._hs_tree = None
        self.running_training_loss = 0.0
        self.train_count = 0
        self.total_train_time = 0.0
        self.min_alpha_yet_reached = self.alpha
        if sentences is not None or corpus_file is not None:
            if sentences is not None and _is_one_shot(sentences):
                raise TypeError(
                    "Word2Vec: sentences is a generator or iterator, which can be read once; training reads it "
                    f"{self.epochs + 1} times (vocabulary + epochs). Pass a list or a restartable iterable."
                )
            self.build_vocab(corpus_iterable=sentences, corpus_file=corpus_file, trim_rule=trim_rule)
            self.train(
                corpus_iterable=sentences,
                corpus_file=corpus_file,
                total_examples=self.corpus_count,
                total_words=self.corpus_total_words,
                epochs=self.epochs,
                start_alpha=self.alpha,
                end_alpha=self.min_alpha,
                compute_loss=self.compute_loss,
                callbacks=self.callbacks,
            )
        elif trim_rule is not None:
            logger.warning("the rule, if given, is only used to prune vocabulary during build_vocab()")

    def __str__(self):
        return f"Word2Vec<vocab={len(self.wv.index_to_key)}, vector_size={self.vector_size}, alpha={self.alpha}>"

    __repr__ = __str__

    # -- vocabulary ---------------------------------------------------------------------------

    @staticmethod
    def _check_corpus(corpus_iterable, corpus_file):
        if corpus_iterable is None and corpus_file is None:
            raise TypeError("Either one of corpus_file or corpus_iterable value must be provided")
        if corpus_iterable is not None and corpus_file is not None:
            raise TypeError("Both corpus_file and corpus_iterable must not be provided at the same time")
        if corpus_file is not None:
            path = os.fspath(corpus_file)
            if not os.path.isfile(path):
                raise TypeError(f"Parameter corpus_file must be a valid path to a file, got {corpus_file!r} instead")
            if path.endswith((".gz", ".bz2", ".xz")):
                raise TypeError(
                    f"Training from compressed files is not supported with corpus_file; decompress {path} or "
                    "pass corpus_iterable=LineSentence(path)"
                )
            return path
        return None

    def scan_vocab(self, corpus_iterable=None, corpus_file=None, progress_per=10000, trim_rule=None):
        """Count the corpus's words into self.raw_vocab; returns (total words, sentences)."""
        path = self._check_corpus(corpus_iterable, corpus_file)
        if path is not None:
            words, counts, total, n_sent = ops.word2vec_count_file(path)
            raw = dict(zip(words, (int(c) for c in counts)))
            if self.max_vocab_size and len(raw) > self.max_vocab_size:
                # the file is counted whole; prune once to the cap, raising the bar as gensim would
                min_reduce = 1
                while len(raw) > self.max_vocab_size:
                    _vocab._prune(raw, min_reduce, trim_rule)
                    min_reduce += 1
        else:
            raw, n_sent, total = _vocab.count_words(_Sentences(corpus_iterable, self), self.max_vocab_size, trim_rule)
            raw = dict(raw)
        self.raw_vocab = raw
        self.corpus_count = int(n_sent)
        self.corpus_total_words = int(total)
        logger.info("collected %d word types from a corpus of %d raw words and %d sentences", len(raw), total, n_sent)
        return int(total), int(n_sent)

    def prepare_vocab(
        self, update=False, keep_raw_vocab=False, trim_rule=None, min_count=None, sample=None, dry_run=False
    ):
        """Apply min_count (or max_final_vocab), sort by descending frequency and compute the
        subsampling thresholds; returns a report dict as gensim's."""
        if update:
            raise NotImplementedError("Word2Vec.build_vocab(update=True): online vocabulary updates are not supported")
        min_count = self.min_count if min_count is None else min_count
        sample = self.sample if sample is None else sample
        raw = self.raw_vocab or {}
        if self.max_final_vocab is not None and self.max_final_vocab < len(raw):
            by_count = sorted(raw.values(), reverse=True)
            min_count = max(min_count, by_count[self.max_final_vocab] + 1)
        self.effective_min_count = min_count
        kept = [(w, c) for w, c in raw.items() if _vocab.keep_rule(w, c, min_count, trim_rule)]
        if self.sorted_vocab:
            kept.sort(key=lambda wc: -wc[1])  # stable: equal counts keep first-seen order
        words = [w for w, _ in kept]
        counts = np.array([c for _, c in kept], dtype=np.int64)
        retain_total = int(counts.sum())
        sample_int, downsampled = _vocab.sample_ints(counts, sample)
        report = {
            "drop_unique": len(raw) - len(words),
            "retain_total": retain_total,
            "downsample_unique": int((sample_int < 2**32 - 1).sum()),
            "downsample_total": int(downsampled),
            "num_retained_words": len(words),
            "memory": self.estimate_memory(len(words)),
        }
        if dry_run:
            return report
        self.wv = _keyed_vectors(words, self.vector_size, counts, sample_int)
        self._counts = counts
        self._sample_int = sample_int
        logger.info(
            "min_count=%d retains %d unique words (drops %d); sample=%g downsamples %d most-common words",
            min_count,
            len(words),
            report["drop_unique"],
            sample,
            report["downsample_unique"],
        )
        if not keep_raw_vocab:
            self.raw_vocab = {}
        return report

    def estimate_memory(self, vocab_size=None, report=None):
        """Bytes the weights need (gensim's estimate, without Python object overheads)."""
        n = len(self.wv.index_to_key) if vocab_size is None else vocab_size
        report = dict(report or {})
        report["vectors"] = n * self.vector_size * 4
        if self.negative:
            report["syn1neg"] = n * self.vector_size * 4
        if self.hs:
            report["syn1"] = n * self.vector_size * 4
        report["total"] = sum(report.values())
        return report

    def build_vocab(
        self,
        corpus_iterable=None,
        corpus_file=None,
        update=False,
        progress_per=10000,
        keep_raw_vocab=False,
        trim_rule=None,
        **kwargs,
    ):
        """Count the corpus, choose the vocabulary and initialise the weights (gensim's
        build_vocab)."""
        self.scan_vocab(corpus_iterable=corpus_iterable, corpus_file=corpus_file, trim_rule=trim_rule)
        self.prepare_vocab(update=update, keep_raw_vocab=keep_raw_vocab, trim_rule=trim_rule, **kwargs)
        self.prepare_weights()

    def build_vocab_from_freq(self, word_freq, keep_raw_vocab=False, corpus_count=None, trim_rule=None, update=False):
        """build_vocab from a {word: count} mapping instead of a corpus."""
        self.raw_vocab = {str(w): int(c) for w, c in word_freq.items()}
        self.corpus_count = int(corpus_count or 0)
        self.corpus_total_words = int(sum(self.raw_vocab.values()))
        self.prepare_vocab(update=update, keep_raw_vocab=keep_raw_vocab, trim_rule=trim_rule)
        self.prepare_weights()

    def prepare_weights(self, update=False):
        """The negative-sampling table, the Huffman tree and fresh weights for the vocabulary."""
        counts = self._counts
        if self.negative:
            self.cum_table = _vocab.cum_table(counts, self.ns_exponent)
        if self.hs:
            self._hs_tree = _vocab.huffman(counts)
        self.init_weights()

    def make_cum_table(self, domain=_vocab.CUM_DOMAIN):
        self.cum_table = _vocab.cum_table(self._counts, self.ns_exponent)

    def init_weights(self):
        """Input vectors uniform in [-1/D, 1/D) from seed (as gensim 4), output weights zero."""
        n, d = len(self.wv.index_to_key), self.vector_size
        rng = np.random.default_rng(self.seed)
        v = rng.random((n, d), dtype=np.float32)
        v *= 2.0
        v -= 1.0
        v /= d
        self.wv.vectors = v
        self.wv.norms = None
        self.syn1neg = np.zeros((n, d), np.float32) if self.negative else np.zeros((0, d), np.float32)
        self.syn1 = np.zeros((n, d), np.float32) if self.hs else np.zeros((0, d), np.float32)

    # -- training -----------------------------------------------------------------------------

    def _kernel_args(self, compute_loss):
        kw = dict(
            syn1neg=self.syn1neg if self.negative else None,
            sample_int=self._sample_int if self.sample else None,
            cum_table=self.cum_table if self.negative else None,
            sg=bool(self.sg),
            negative=self.negative,
            window=self.window,
            shrink_windows=self.shrink_windows,
            cbow_mean=bool(self.cbow_mean),
            compute_loss=compute_loss,
            num_threads=self.workers,
        )
        if self.hs:
            points, codes, lengths = self._hs_tree
            kw.update(syn1=self.syn1, points=points, codes=codes, code_lengths=lengths)
        return kw

    def _check_training(self, epochs, total_examples, total_words):
        if not self.hs and not self.negative:
            raise ValueError(
                "You must set either 'hs' or 'negative' to be positive for proper training. "
                "When both 'hs=0' and 'negative=0', there will be no training."
            )
        if self.hs and self.negative:
            logger.warning("Both hierarchical softmax and negative sampling are activated. This is probably a mistake.")
        if not self.wv.key_to_index:
            raise RuntimeError("you must first build vocabulary before training the model")
        if total_words is None and total_examples is None:
            raise ValueError(
                "You must specify either total_examples or total_words, for proper learning-rate and progress "
                "calculations. If you've just built the vocabulary using the same corpus, using the count cached "
                "in the model is sufficient: total_examples=model.corpus_count."
            )
        if epochs is None or epochs <= 0:
            raise ValueError("You must specify an explicit epochs count. The usual value is epochs=model.epochs.")

    def train(
        self,
        corpus_iterable=None,
        corpus_file=None,
        total_examples=None,
        total_words=None,
        epochs=None,
        start_alpha=None,
        end_alpha=None,
        word_count=0,
        queue_factor=2,
        report_delay=1.0,
        compute_loss=False,
        callbacks=(),
        progress=None,
        **kwargs,
    ):
        """Train the vectors (gensim's train): epochs passes over the corpus with the learning
        rate falling linearly from start_alpha to end_alpha. Progress is measured against
        total_words (raw words per epoch) when given, else total_examples (sentences per epoch).
        Returns (effective words trained, raw words). Logs words/s per epoch through `logging`;
        progress=True (or None with stderr a terminal) shows a tqdm bar when tqdm is installed."""
        path = self._check_corpus(corpus_iterable, corpus_file)
        self._check_training(epochs, total_examples, total_words)
        if path is not None and total_words is None:
            raise ValueError("total_words must be provided alongside corpus_file argument.")
        if corpus_iterable is not None and _is_one_shot(corpus_iterable) and epochs > 1:
            raise TypeError(
                f"Using a generator as corpus_iterable can't support {epochs} passes. Try a re-iterable sequence."
            )
        self.epochs = int(epochs)
        start_alpha = self.alpha if start_alpha is None else float(start_alpha)
        end_alpha = self.min_alpha if end_alpha is None else float(end_alpha)
        self.compute_loss = bool(compute_loss)
        self.running_training_loss = 0.0
        callbacks = tuple(callbacks) or self.callbacks
        for cb in callbacks:
            _call(cb, "on_train_begin", self)
        kw = self._kernel_args(self.compute_loss)
        bar = _progress(epochs * (total_words or total_examples), "word2vec", progress)
        trained = raw = 0
        cache = []  # a list corpus's encoded batches, reused by every epoch of this call
        t_start = time.perf_counter()
        try:
            for epoch in range(epochs):
                for cb in callbacks:
                    _call(cb, "on_epoch_begin", self)
                t0 = time.perf_counter()
                if path is not None:
                    e_trained, e_raw = self._train_file_epoch(path, epoch, epochs, start_alpha, end_alpha, kw, bar)
                else:
                    e_trained, e_raw = self._train_iterable_epoch(
                        self._epoch_batches(corpus_iterable, cache),
                        epoch,
                        epochs,
                        total_examples,
                        total_words,
                        start_alpha,
                        end_alpha,
                        kw,
                        bar,
                    )
                dt = time.perf_counter() - t0
                trained += e_trained
                raw += e_raw
                logger.info(
                    "EPOCH %d: training on %d raw words (%d effective words) took %.1fs, %.0f effective words/s",
                    epoch,
                    e_raw,
                    e_trained,
                    dt,
                    e_trained / max(dt, 1e-9),
                )
                for cb in callbacks:
                    _call(cb, "on_epoch_end", self)
        finally:
            if bar is not None:
                bar.close()
        self.total_train_time += time.perf_counter() - t_start
        self.train_count += 1
        self.min_alpha_yet_reached = end_alpha
        self.wv.norms = None
        for cb in callbacks:
            _call(cb, "on_train_end", self)
        return trained, raw

    def _train_file_epoch(self, path, epoch, epochs, a0, a1, kw, bar):
        p0, p1 = epoch / epochs, (epoch + 1) / epochs
        raw, eff, loss = ops.word2vec_train_file(
            self.wv.vectors,  # updated in place, as are the output weights
            path,
            self.wv.index_to_key,
            alpha=a0,
            min_alpha=a1,
            progress=(p0, p1),
            seed=self._epoch_seed(epoch),
            **kw,
        )
        self.running_training_loss += loss
        if bar is not None:
            bar.update(self.corpus_total_words)
        return eff, raw

    def _epoch_seed(self, epoch):
        return (self.seed * 1000003 + self.train_count * 1009 + epoch) & 0xFFFFFFFFFFFF

    def _batches(self, corpus):
        """The corpus encoded for the kernel, a batch of about _CALL_WORDS words at a time:
        (word rows int32, sentence ends int64, raw words, sentences). Out-of-vocabulary words are
        dropped; a sentence longer than MAX_WORDS_IN_BATCH words is cut into pieces."""
        get = self.wv.key_to_index.get
        ids, ends = [], []
        batch_raw = batch_sent = 0
        for s in _Sentences(corpus, self):
            batch_raw += len(s)
            batch_sent += 1
            for i in range(0, len(s), MAX_WORDS_IN_BATCH):
                ids.extend(x for x in map(get, s[i : i + MAX_WORDS_IN_BATCH]) if x is not None)
                ends.append(len(ids))
            if len(ids) >= _CALL_WORDS:
                yield np.array(ids, dtype=np.int32), np.array(ends, dtype=np.int64), batch_raw, batch_sent
                ids, ends = [], []
                batch_raw = batch_sent = 0
        if batch_sent:
            yield np.array(ids, dtype=np.int32), np.array(ends, dtype=np.int64), batch_raw, batch_sent

    def _epoch_batches(self, corpus, cache):
        """This epoch's batches: encoded afresh from the corpus (a restartable iterable may yield
        other sentences on each pass), or, for a list or tuple of at most _CACHE_WORDS words,
        encoded on the first epoch and kept for the others (cache: the train() call's list)."""
        if not isinstance(corpus, (list, tuple)) or self.corpus_total_words > _CACHE_WORDS:
            return self._batches(corpus)
        if not cache:
            cache.extend(self._batches(corpus))
        return cache

    def _train_iterable_epoch(self, batches, epoch, epochs, total_examples, total_words, a0, a1, kw, bar):
        by_words = total_words is not None and total_words > 0
        per_epoch = total_words if by_words else max(int(total_examples), 1)
        done = 0  # raw words (or sentences) of this epoch already handed to the kernel
        trained = raw_total = 0
        seed = self._epoch_seed(epoch)
        for call, (ids, ends, batch_raw, batch_sent) in enumerate(batches):
            step = batch_raw if by_words else batch_sent
            p0 = (epoch + min(done / per_epoch, 1.0)) / epochs
            p1 = (epoch + min((done + step) / per_epoch, 1.0)) / epochs
            if len(ids):
                _, eff, loss = ops.word2vec_train(
                    self.wv.vectors,
                    ids,
                    ends,
                    alpha=a0,
                    min_alpha=a1,
                    progress=(p0, p1),
                    seed=seed + call * 0x9E3779B1,
                    **kw,
                )
                trained += eff
                self.running_training_loss += loss
            done += step
            raw_total += batch_raw
            if bar is not None:
                bar.update(step)
        return trained, raw_total

    def get_latest_training_loss(self):
        """The summed loss of the last train() call when it ran with compute_loss=True."""
        return self.running_training_loss

    # -- persistence (no pickle) --------------------------------------------------------------

    _PARAMS = (
        "vector_size",
        "alpha",
        "min_alpha",
        "window",
        "min_count",
        "max_vocab_size",
        "sample",
        "seed",
        "workers",
        "sg",
        "hs",
        "negative",
        "ns_exponent",
        "cbow_mean",
        "epochs",
        "sorted_vocab",
        "batch_words",
        "compute_loss",
        "comment",
        "max_final_vocab",
        "shrink_windows",
        "corpus_count",
        "corpus_total_words",
        "effective_min_count",
        "train_count",
        "total_train_time",
        "running_training_loss",
        "min_alpha_yet_reached",
    )

    def save(self, fname):
        """Write the model to fname (an .npz: the arrays, and a JSON header with the parameters and
        the vocabulary). Word2Vec.load reads it back; no pickle is involved."""
        header = {"format": _FORMAT, "version": _FORMAT_VERSION}
        header["params"] = {k: getattr(self, k) for k in self._PARAMS}
        header["index_to_key"] = list(self.wv.index_to_key)
        arrays = {
            "vectors": self.wv.vectors,
            "syn1neg": self.syn1neg,
            "syn1": self.syn1,
            "counts": np.asarray(self._counts, np.int64),
            "sample_int": self._sample_int,
            "cum_table": self.cum_table,
        }
        if self._hs_tree is not None:
            arrays.update(points=self._hs_tree[0], codes=self._hs_tree[1], code_lengths=self._hs_tree[2])
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        with open(os.fspath(fname), "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, fname, mmap=None):
        """Read a model written by save()."""
        path = os.fspath(fname)
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"Word2Vec.load: {path} is not a file written by Word2Vec.save ({e})") from None
        with z:
            if "header" not in z.files:
                raise ValueError(f"Word2Vec.load: {path} has no header: not written by Word2Vec.save")
            try:
                header = json.loads(bytes(z["header"]).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"Word2Vec.load: {path}: unreadable header ({e})") from None
            if header.get("format") != _FORMAT or header.get("version") != _FORMAT_VERSION:
                raise ValueError(f"Word2Vec.load: {path} is not a {_FORMAT} file of version {_FORMAT_VERSION}")
            arrays = {k: z[k] for k in z.files if k != "header"}
        p = header["params"]
        init = inspect.signature(cls.__init__).parameters
        model = cls(**{k: p[k] for k in cls._PARAMS if k in p and k in init})
        for k in cls._PARAMS:
            if k in p:
                setattr(model, k, p[k])
        words = [str(w) for w in header["index_to_key"]]
        n, d = len(words), model.vector_size
        expect = {"vectors": (n, d), "counts": (n,), "sample_int": (n,)}
        for k, shape in expect.items():
            if arrays[k].shape != shape:
                raise ValueError(f"Word2Vec.load: {path}: {k} has shape {arrays[k].shape}, expected {shape}")
        model._counts = arrays["counts"].astype(np.int64)
        model._sample_int = arrays["sample_int"].astype(np.uint32)
        model.wv = _keyed_vectors(words, d, model._counts, model._sample_int)
        model.wv.vectors = np.ascontiguousarray(arrays["vectors"], np.float32)
        model.cum_table = arrays["cum_table"].astype(np.uint32)
        model.syn1neg = np.ascontiguousarray(arrays["syn1neg"], np.float32)
        model.syn1 = np.ascontiguousarray(arrays["syn1"], np.float32)
        if "points" in arrays:
            model._hs_tree = (
                arrays["points"].astype(np.int32),
                arrays["codes"].astype(np.uint8),
                arrays["code_lengths"].astype(np.int32),
            )
        return model


def _keyed_vectors(words, vector_size, counts, sample_int):
    """A KeyedVectors of words (rows in this order) with their counts and subsampling thresholds
    as per-key attributes 'count' and 'sample_int' (gensim's names); vectors zero."""
    wv = KeyedVectors(vector_size, count=len(words))
    wv.index_to_key = list(words)
    wv.key_to_index = {w: i for i, w in enumerate(words)}
    wv.next_index = len(words)
    wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[np.int64, np.int64])
    wv.expandos["count"][:] = counts
    wv.expandos["sample_int"][:] = sample_int
    return wv


def _call(cb, name, model):
    fn = getattr(cb, name, None)
    if fn is not None:
        fn(model)
