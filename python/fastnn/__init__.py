"""fastnn: hand-written neural-network kernels with NumPy references."""
from ._version import __version__
from . import _core
from ._config import cached_memory, empty_cache, get_num_threads, set_num_threads, show_config
from . import ops, ref

__all__ = ["__version__", "ops", "ref", "show_config", "get_num_threads", "set_num_threads",
           "empty_cache", "cached_memory"]
