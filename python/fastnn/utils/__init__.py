"""fastnn.utils: torch.utils's layout for code that imports torch.utils.data."""

from . import data

__all__ = ["data"]
