"""Tests of the core: values, options, records, errors (``fanfetch._core``)."""
