"""The work behind ``benchmarks/``: each benchmark script parses its flags and calls one ``run``
here, so that its measurement can be imported, tested and rerun from other code.

This package sits with the scripts, above the harness: it may import anything in ``dif``, and
nothing in ``dif`` imports it.
"""
