"""The wheel, installed in a clean environment, works: what `pip install fanfetch` gives."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_installed_in_a_clean_venv_runs_the_cli_and_the_api(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
        check=True, timeout=300,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("fanfetch-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the dependencies (not fanfetch itself: the dev install's finder is a .pth in that
    # folder, which a path named here does not run) come from this environment
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    version = subprocess.run(
        [str(venv / "bin" / "fanfetch"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("fanfetch ")
    code = (
        "import fanfetch, pathlib\n"
        f"assert pathlib.Path(fanfetch.__file__).is_relative_to({str(venv)!r}), fanfetch.__file__\n"
        "with fanfetch.MockAPI() as api:\n"
        "    results = fanfetch.run([f'{api.url}/items/{i}' for i in range(50)])\n"
        "assert [r.ok for r in results] == [True] * 50\n"
        "print('ok')\n"
    )
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    licence = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    )
    assert "LICENSE" in licence.stdout and "py.typed" in licence.stdout
