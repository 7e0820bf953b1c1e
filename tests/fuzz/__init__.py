"""The property-based fuzz suite of fastnn.ops (docs/testing.md, "The fuzz suite").

table.py: every public op with a hypothesis strategy of valid calls, its reference and its
check; mutations.py: the generic mutations of a valid call and what each may answer; run.py:
the child process that fuzzes one op (python tests/fuzz/run.py OP); tests/test_fuzz.py runs one
child per op and reports a crash, a hang or a failed case."""
