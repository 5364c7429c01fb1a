"""Tests of HTTP and the transports (``fanfetch._net``): the conformance suite, TLS, proxies,
credentials."""
