"""Tests of more than one process: --workers and Ray (``fanfetch._scale``)."""
