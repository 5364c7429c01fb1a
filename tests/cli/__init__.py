"""Tests of the command line, its report and bench commands (``fanfetch._cli``)."""
