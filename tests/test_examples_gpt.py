"""The GPT-style character example runs end to end in a tiny configuration and learns."""

import pytest
from conftest import load_example as _load


def test_char_gpt_tiny(capsys):
    history = _load("char_gpt").main(
        [
            "--chars",
            "20000",
            "--dim",
            "16",
            "--heads",
            "2",
            "--layers",
            "1",
            "--block",
            "16",
            "--batch",
            "8",
            "--steps",
            "25",
            "--epochs",
            "3",
            "--sample",
            "40",
        ]
    )
    val = [h["val_loss"] for h in history]
    assert val[0] < 4.2 and val[2] < val[0]  # from about ln(vocab) = 4.0
    assert all(h["tokens_per_s"] > 0 for h in history)
    out = capsys.readouterr().out
    assert "tokens/s" in out and out.split("--- sample", 1)[1].count("\n") >= 2


def test_char_gpt_too_little_text():
    with pytest.raises(ValueError, match="too short"):
        _load("char_gpt").main(["--chars", "2000", "--epochs", "1"])
