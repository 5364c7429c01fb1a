"""The recipes in examples/ run as written, against the embedded mock API: they never rot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
SLOW = {"polite_scraping", "backfill_resume"}  # seconds each: make test runs them, test-fast not


@pytest.mark.parametrize(
    "script",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in EXAMPLES],
    ids=lambda p: p.stem,
)
async def test_example_runs(script: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    assert out.strip(), "an example says what it did"


def test_there_are_examples():
    assert len(EXAMPLES) >= 4
