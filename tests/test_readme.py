"""The README's Python blocks run as written (against the embedded mock API)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize(
    "code",
    [  # a block that starts a Ray cluster takes seconds: slow, left out of make test-fast
        pytest.param(code, marks=pytest.mark.slow) if 'cluster="ray"' in code else code
        for code in BLOCKS
    ],
    ids=lambda c: c.splitlines()[0][:40],
)
async def test_readme_python_block_runs(code: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.strip()
