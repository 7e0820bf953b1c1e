"""The package version, from the installed distribution's metadata."""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("fastnn")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
