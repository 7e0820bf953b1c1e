"""The recurrent examples run end to end in a tiny configuration and learn (loss falls)."""

import pytest
from conftest import load_example as _load


def test_char_lstm_tiny(capsys):
    history = _load("char_lstm").main(
        [
            "--chars",
            "12000",
            "--embed",
            "8",
            "--hidden",
            "24",
            "--batch",
            "8",
            "--bptt",
            "16",
            "--epochs",
            "3",
            "--sample",
            "40",
        ]
    )
    val = [h["val_loss"] for h in history]
    assert val[0] < 4.2 and val[2] < val[1] < val[0]  # from about ln(vocab) = 4.0, falling each epoch
    assert all(h["tokens_per_s"] > 0 for h in history)
    out = capsys.readouterr().out
    assert "tokens/s" in out and out.split("--- sample", 1)[1].count("\n") >= 2


def test_seq_classifier_tiny():
    history = _load("seq_classifier").main(
        ["--train", "256", "--test", "128", "--steps", "6", "--hidden", "16", "--batch", "32", "--epochs", "4"]
    )
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.6  # chance is 0.5


def test_char_lstm_too_little_text():
    with pytest.raises(ValueError, match="training text is too short"):
        _load("char_lstm").main(["--chars", "2000", "--epochs", "1"])
    with pytest.raises(ValueError, match="validation text is too short"):
        _load("char_lstm").main(["--chars", "20000", "--epochs", "1"])
