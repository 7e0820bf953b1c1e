"""Classic PyTorch training programs, run unchanged on torch and on fastnn (tests/test_corpus.py)."""
