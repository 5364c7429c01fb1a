"""The library speaks its caller's language: a message that names an option says
``--max-redirects`` to the command line (its worker processes included) and
``max_redirects=`` to Python; other text between backquotes is left as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fanfetch
from fanfetch._cli._main import as_flag
from fanfetch._core._voice import speak
from tests.conftest import CLIResult, run_cli_blocking


def _cli(tmp_path: Path, url: str, *flags: str) -> CLIResult:
    source = tmp_path / "in.txt"
    source.write_text(url + "\n")
    return run_cli_blocking("run", str(source), "-q", *flags)


def _read(path: Path) -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("entry", ["cli", "workers", "api"])
def test_a_record_names_the_option_as_its_entry_does(api_in_thread: str, tmp_path: Path, entry):
    url, out = f"{api_in_thread}/loop", tmp_path / "out.jsonl"
    if entry == "api":
        fanfetch.run([url], output=out, max_redirects=2)
    else:
        workers = ["--workers", "2"] if entry == "workers" else []
        done = _cli(tmp_path, url, "-o", str(out), "--max-redirects", "2", *workers)
        assert done.status == 1, done.stderr
    [record] = _read(out)
    assert record["error"]["type"] == "too_many_redirects"
    message = record["error"]["message"]
    if entry == "api":
        assert "raise max_redirects= if" in message and "--" not in message
    else:
        assert "raise --max-redirects if" in message and "max_redirects" not in message


def test_an_error_raised_to_python_names_keywords_and_the_command_line_says_flags(
    tmp_path: Path,
):
    with pytest.raises(fanfetch.UsageError) as caught:
        fanfetch.run(["http://127.0.0.1:9/"], transport="lean", cookies=True)
    assert "use transport='aiohttp'" in str(caught.value)
    done = _cli(tmp_path, "http://127.0.0.1:9/", "--transport", "lean", "--cookies")
    assert done.status == 2
    assert "use --transport aiohttp" in done.stderr and "transport=" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_config_hint_names_the_other_option_in_each_language(tmp_path: Path):
    with pytest.raises(fanfetch.ConfigError) as caught:
        fanfetch.run(["http://127.0.0.1:9/"], oauth2_token_url="http://127.0.0.1:9/token")
    assert "oauth2_client_id=" in str(caught.value)
    done = _cli(tmp_path, "http://127.0.0.1:9/", "--oauth2-token-url", "http://127.0.0.1:9/t")
    assert done.status == 2 and "--oauth2-client-id" in done.stderr, done.stderr


def test_only_option_names_are_spoken_and_other_backquoted_text_stays():
    text = '`expect` "a == `true`" failed; raise `max_file=10`; see `resume=True`, `banana`'
    assert speak(text) == (
        'expect= "a == `true`" failed; raise max_file=10; see resume=True, `banana`'
    )
    assert speak(text, as_flag) == (
        '--expect "a == `true`" failed; raise --max-file 10; see --resume, `banana`'
    )
    assert speak("trust `cacert=ca.pem` or `verify_tls=False`", as_flag) == (
        "trust --cacert ca.pem or --insecure"
    )
    assert speak("trust `cacert=ca.pem` or `verify_tls=False`") == (
        "trust cacert='ca.pem' or verify_tls=False"
    )
