"""Reading input: URL lines and JSON lines become requests; anything else an invalid record."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanfetch import Request, Result
from fanfetch._io._input import MAX_LINE_BYTES, aiter_items, coerce, parse_line, read_items
from tests.faults import refused_url


def items(text: bytes) -> list[Request | Result]:
    return list(read_items(io.BytesIO(text)))


def test_a_plain_url_line_is_a_get_whose_id_is_its_line_number():
    [request] = items(b"\n\nhttp://127.0.0.1/a\n")
    assert isinstance(request, Request)
    assert (request.method, request.url, request.id, request.line) == (
        "GET",
        "http://127.0.0.1/a",
        3,
        3,
    )


def test_a_json_line_carries_every_field_and_its_own_id():
    line = orjson.dumps(
        {
            "id": "x1", "method": "put", "url": "https://127.0.0.1/a", "headers": {"A": "b"},
            "params": {"q": 1}, "json": [1, 2], "timeout": 5, "meta": {"m": True}, "cost": 3,
        }
    )  # fmt: skip
    [request] = items(line + b"\n")
    assert isinstance(request, Request)
    assert request.to_dict() == {
        "id": "x1", "method": "PUT", "url": "https://127.0.0.1/a", "headers": {"A": "b"},
        "params": {"q": 1}, "json": [1, 2], "timeout": 5.0, "meta": {"m": True}, "cost": 3.0,
    }  # fmt: skip


def test_blank_lines_are_skipped_but_counted_and_seq_follows_the_requests():
    out = items(b"http://127.0.0.1/1\n  \n\nhttp://127.0.0.1/2\n")
    assert [(i.request.line if isinstance(i, Result) else i.line) for i in out] == [1, 4]
    assert [i.seq for i in out if isinstance(i, Request)] == [0, 1]


def invalid(line: bytes) -> str:
    item = parse_line(line, 7)
    assert isinstance(item, Result)
    assert item.error is not None and item.error.type == "invalid_request"
    assert item.request.id == 7 and item.attempts == 0
    message = str(item.error)
    assert message.startswith("line 7: ")
    return message


def test_each_kind_of_bad_line_gets_its_own_clear_message():
    assert "malformed JSON" in invalid(b"{nope")
    assert "no 'url'" in invalid(b'{"method": "GET"}')
    assert "unsupported scheme 'ftp'" in invalid(b"ftp://127.0.0.1/x")
    assert "unsupported method" in invalid(b'{"url": "http://127.0.0.1/", "method": "BREW"}')
    assert "unknown field(s) heders" in invalid(b'{"url": "http://127.0.0.1/", "heders": {}}')
    assert "not UTF-8" in invalid(b"\xff\xfe binary")
    assert "no host" in invalid(b"http:" + b"///path")  # hostless: it can go nowhere
    assert "one of 'json', 'data' and 'form'" in invalid(
        b'{"url": "http://127.0.0.1/", "json": 1, "data": "x"}'
    )
    assert "'timeout' must be" in invalid(b'{"url": "http://127.0.0.1/", "timeout": -1}')
    assert "over" in invalid(b"http://127.0.0.1/" + b"a" * MAX_LINE_BYTES)
    for space in ("a b", "a\tb", "a\u00a0b", "a\x00b"):  # a space inside, not at the ends
        assert "white space or control" in invalid(f"http://127.0.0.1/{space}".encode())


def test_an_at_sign_in_the_path_or_query_is_no_user_part():
    for line in (b"http://127.0.0.1/users/a@b.example", b"http://127.0.0.1/?to=a@b.example"):
        item = parse_line(line, 1)
        assert isinstance(item, Request), item


def test_a_url_with_credentials_is_refused_and_they_are_not_echoed():
    scheme = b"http:"  # written apart so no tool mistakes it for a URL a test calls
    item = parse_line(scheme + b"//user:hunter2@127.0.0.1/x", 1)  # refused: nothing is sent
    assert isinstance(item, Result)
    assert "hunter2" not in str(item.error) and "hunter2" not in item.url


def test_coerce_takes_requests_dicts_and_strings():
    assert isinstance(coerce("http://127.0.0.1/", seq=4), Request)
    made = coerce({"url": "http://127.0.0.1/"}, seq=4)
    assert isinstance(made, Request) and made.id == 5  # no line: 1-based position
    bad = coerce(42)
    assert isinstance(bad, Result) and "not int" in str(bad.error)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_arbitrary_bytes_never_crash_and_give_one_item_per_non_blank_line(lines: list[bytes]):
    data = b"\n".join(line.replace(b"\n", b"") for line in lines)
    out = list(read_items(io.BytesIO(data)))
    first_unmarked = data.removeprefix(b"\xef\xbb\xbf")  # a byte order mark is no line
    expected = sum(1 for line in first_unmarked.split(b"\n") if line.strip())
    assert len(out) == expected


async def test_aiter_items_reads_a_stream_in_batches_off_the_loop():
    data = b"".join(b"http://127.0.0.1/%d\n" % i for i in range(1000))
    seen = [item async for item in aiter_items(io.BytesIO(data), batch=64)]
    assert [i.id for i in seen] == list(range(1, 1001))


async def test_only_ids_given_twice_are_reported_not_lines_that_mention_id(tmp_path):
    from tests.conftest import run_cli

    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"url": "http://127.0.0.1:9/a", "meta": {"id": 1}}\n'  # line 1: mentions "id" only
        '{"url": "http://127.0.0.1:9/b", "meta": {"id": 1}}\n'
        '{"id": "x", "url": "http://127.0.0.1:9/c"}\n'
        '{"url": "http://127.0.0.1:9/d", "meta": "id"}\n'
        '{"id": 9, "url": "http://127.0.0.1:9/e"}\n'  # given once, and no line is line 9
    )
    quiet = await run_cli("run", str(src), "-q", "--retries", "0")
    assert "repeat an id" not in quiet.stderr, quiet.stderr
    with src.open("a") as f:
        f.write('{"id": "x", "url": "http://127.0.0.1:9/f"}\n')  # line 6 gives "x" again
    loud = await run_cli("run", str(src), "-q", "--retries", "0")
    assert "1 line(s) repeat an id given earlier" in loud.stderr, loud.stderr
    assert "(lines 6)" in loud.stderr, loud.stderr


@pytest.mark.parametrize(
    "lines",
    [
        ['{"id": 3, "url": "http://127.0.0.1:9/a"}', "http://127.0.0.1:9/b",
         "http://127.0.0.1:9/c"],  # line 3 has no id: its id is 3, which line 1 gave
        ["http://127.0.0.1:9/a", '{"id": 1, "url": "http://127.0.0.1:9/b"}'],  # line 1's 1
        ['{"id": 2, "url": "http://127.0.0.1:9/a"}', "not a url"],  # an invalid line too
    ],
)  # fmt: skip
async def test_a_line_number_as_id_that_another_line_gives_is_reported_and_refused_on_resume(
    tmp_path: Path, lines: list[str]
):
    """A resume would skip both lines for the one record: one request would never get one."""
    from tests.conftest import run_cli

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    first = await run_cli("run", str(src), "-o", str(out), "-q", "--retries", "0")
    assert "1 line(s) repeat an id given earlier" in first.stderr, first.stderr
    out.write_text(out.read_text().splitlines()[0] + "\n")  # as if killed after one record
    again = await run_cli("run", str(src), "-o", str(out), "--resume", "-q", "--retries", "0")
    assert again.status == 2 and "share an id" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    assert len(out.read_text().splitlines()) == 1  # nothing sent, nothing written


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "0x7f.0.0.1", "2130706433", "127.0.0.256",
                                  "1.2.3.4.5", "0177.0.0.1"])  # fmt: skip
def test_a_host_read_as_an_ipv4_address_but_not_written_as_one_is_invalid(host: str):
    """127.1 and 0x7f.1 both mean 127.0.0.1 to a resolver: both are refused alike."""
    item = parse_line(refused_url(host).encode(), 1)
    assert isinstance(item, Result) and item.error is not None, host
    assert "not an IPv4 address" in str(item.error)


@pytest.mark.parametrize("host", ["127.0.0.1", "cafe.0xbeef.test", "api2.test", "[::1]"])
def test_names_and_proper_addresses_are_hosts(host: str):
    assert isinstance(parse_line(refused_url(host).encode(), 1), Request), host
