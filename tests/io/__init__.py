"""Tests of input, output, record formats, resume (``fanfetch._io``)."""
