"""Tests of the engine (``fanfetch._engine``): scheduler, attempts and hooks, limits, retries,
pages, stages."""
