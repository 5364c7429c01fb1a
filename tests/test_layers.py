"""The layering, as folders and as import-linter contracts (``[tool.importlinter]`` in
pyproject.toml, run by ``make test``): ``_cli`` > ``_frames`` > ``_sync`` > ``_scale | _client`` >
``_engine`` > ``_net | _io | _observe`` > ``_core``, siblings joined by | independent; the
core imports nothing of fanfetch outside itself; only the HTTP layer and the transports speak
the transport protocol; nothing imports the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "fanfetch"

TOP = {"__init__", "__main__", "_version", "_client", "_sync", "_frames", "_mockapi"}  # faces
LAYERS = {"_core", "_engine", "_net", "_io", "_observe", "_scale", "_cli"}


def test_every_module_has_a_place_in_a_layer_or_is_a_public_face():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert modules == TOP
    assert packages == LAYERS


def test_the_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, timeout=120,
        cwd=PACKAGE.parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    assert "4 kept, 0 broken" in done.stdout
