"""The package version, and the check that the compiled extension belongs to this package.

The version comes from the installed distribution's metadata when that metadata describes this
very copy of the package (a wheel install, or an editable install of this source tree); the
extension then must carry the same version, or the build is stale and import fails. A source
tree used through PYTHONPATH has no metadata of its own (an installed fastnn elsewhere on the
path does not count): there the version is the one compiled into the extension.
"""

import json
import os
from importlib import metadata as _metadata
from urllib.parse import unquote, urlparse

from . import _core

_HERE = os.path.dirname(os.path.realpath(__file__))


def _metadata_version(dist_name="fastnn", here=_HERE):
    """The metadata version of `dist_name` if its metadata describes the package in `here`, else None."""
    try:
        dist = _metadata.distribution(dist_name)
    except _metadata.PackageNotFoundError:
        return None
    # A regular install: the metadata lies beside the package it describes.
    if os.path.realpath(os.path.dirname(str(dist.locate_file("fastnn/__init__.py")))) == here:
        return dist.version
    # An editable install: the metadata names the source tree the package lies in.
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return None
    if url.get("dir_info", {}).get("editable") and url.get("url", "").startswith("file:"):
        src = os.path.realpath(unquote(urlparse(url["url"]).path))
        if os.path.commonpath([src, here]) == src:
            return dist.version
    return None


def _check(meta, compiled, core_file):
    if meta is not None and meta != compiled:
        raise ImportError(
            f"fastnn: the compiled extension {core_file} is version {compiled}, but the installed "
            f"package is version {meta}: a stale build. Rebuild and reinstall it "
            f"(pip install --force-reinstall --no-deps . in the source tree, or rebuild the "
            f"development build), or remove the old extension file."
        )


_meta = _metadata_version()
_check(_meta, _core.__version__, _core.__file__)
__version__ = _meta if _meta is not None else _core.__version__
