"""fastnn.text: word vectors with gensim 4's interface, in NumPy."""

from .keyedvectors import KeyedVectors

__all__ = ["KeyedVectors"]
