"""fastnn.text: word embeddings. Word2Vec (skip-gram and CBOW with negative sampling or
hierarchical softmax, trained by fastnn's C++ kernels) and KeyedVectors with gensim 4's
interface; the word2vec.c text and binary formats; evaluation by analogies, word pairs and a
held-out loss."""

from .keyedvectors import KeyedVectors
from .utils import negative_sampling_loss, simple_preprocess, tinyshakespeare_sentences
from .word2vec import MAX_WORDS_IN_BATCH, LineSentence, Word2Vec

__all__ = [
    "Word2Vec",
    "KeyedVectors",
    "LineSentence",
    "MAX_WORDS_IN_BATCH",
    "simple_preprocess",
    "tinyshakespeare_sentences",
    "negative_sampling_loss",
]
