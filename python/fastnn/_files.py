"""What the file readers (fastnn.load, fastnn.data.read_idx) share: the size a file may claim
before anything is allocated for it, and reading exactly that many bytes.

A reader takes the sizes a file declares (an archive member's header, an IDX header) and checks
them, before it allocates, against two bounds:
  * the data actually there: a stored member or a raw file holds its bytes one for one, and a
    deflate stream expands at most DEFLATE_MAX_RATIO times (the format's limit: a 258-byte match
    per 2-bit code at best), so a gzip bomb's claim is refused from its compressed size;
  * a cap, `max_bytes` (default: this machine's physical memory), so a file that would need more
    memory than there is fails with a ValueError, not a MemoryError or a swap storm.
"""

import os
import re

# Deflate's largest expansion: 1032 output bytes per input byte, plus a header's worth of slack.
DEFLATE_MAX_RATIO = 1032
_DEFLATE_SLACK = 1024
_JSON_SPECIAL = re.compile(r'["\\\[\]{}]')


def physical_memory():
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def byte_cap(max_bytes, who):
    """The cap a reader applies: max_bytes, or the machine's physical memory when it is None."""
    if max_bytes is None:
        return physical_memory()
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"{who}: max_bytes must be a non-negative int or None, got {max_bytes!r}")
    return max_bytes


def deflate_bound(compressed):
    """The most bytes `compressed` bytes of deflate data can expand to."""
    return compressed * DEFLATE_MAX_RATIO + _DEFLATE_SLACK


def check_claim(nbytes, available, where):
    """Refuse a declared size of nbytes that the file cannot hold (`available`: an upper bound
    from its real size). `where` starts the message ("fastnn.load: f.npz: member 'a0.npy'")."""
    if nbytes > available:
        raise ValueError(f"{where}: declares {nbytes} bytes, more than the file holds (at most {available})")


def check_cap(nbytes, cap, where):
    """Refuse nbytes past the reader's cap (byte_cap) before allocating them."""
    if cap is not None and nbytes > cap:
        raise ValueError(
            f"{where}: needs {nbytes} bytes, more than the limit of {cap} "
            "(max_bytes; by default this machine's physical memory)"
        )


def read_exact(fh, nbytes, where):
    """Exactly nbytes from the stream fh into a new writable buffer, then check that the stream
    ends there; a short or a long stream is a ValueError. Reads in chunks, so a stream that lies
    about its length is noticed before anything past the declared size is decompressed."""
    buf = bytearray(nbytes)
    view = memoryview(buf)
    got = 0
    while got < nbytes:
        n = fh.readinto(view[got : got + (1 << 24)])
        if not n:
            raise ValueError(f"{where}: expected {nbytes} bytes of data, the file ends after {got}")
        got += n
    if fh.read(1):
        raise ValueError(f"{where}: more data than the {nbytes} bytes its header declares")
    return buf


def json_depth(text):
    """The deepest nesting of [ and { in the JSON text, strings left out: one linear scan, so
    that a document nested a million deep is refused before a recursive parser meets it."""
    depth = deepest = 0
    in_string, skip = False, -1
    for m in _JSON_SPECIAL.finditer(text):
        i, ch = m.start(), m.group()
        if i == skip:  # the character after a backslash in a string
            continue
        if in_string:
            if ch == "\\":
                skip = i + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
