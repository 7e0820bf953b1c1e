"""The named (values, indices) pairs that max/min/sort/topk/median/... with a dim return, as
torch.return_types: tuples (unpack them, index them) whose fields are also `.values` and
`.indices`."""

import collections

__all__ = ["max", "min", "sort", "topk", "median"]


def _pair(name):
    cls = collections.namedtuple(name, ("values", "indices"))
    cls.__module__ = __name__
    cls.__qualname__ = name

    def __repr__(self):
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
        return f"fastnn.return_types.{name}(\n{body})"

    cls.__repr__ = __repr__
    return cls


max = _pair("max")
min = _pair("min")
sort = _pair("sort")
topk = _pair("topk")
median = _pair("median")
