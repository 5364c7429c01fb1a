"""Requests made from answers (redirects, next pages): the user's credentials go only to the
origin they were given for, and a URL a server names is followed only when it is http(s),
carries no user:password@ and names no link-local address."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from tests.conftest import run_cli
from tests.faults import refused_url
from tests.net.test_network import SECRET
from tests.servers import ForwardProxy, LoopbackAPI

CREDENTIALS = {  # how each kind of credential is given, and the header it travels in
    "flags": (["--header", f"X-Api-Key: {SECRET}", "--user", f"bob:{SECRET}"],
              ["X-Api-Key", "Authorization", "X-Request-Key"]),
    "oauth2": (["--oauth2-token-url", "{token_url}", "--oauth2-client-id", "app"],
               ["Authorization", "X-Request-Key"]),
    "key_pool": (["--key-pool", "{pool}", "--key-header", "X-Pool-Key: {{key}}"],
                 ["X-Pool-Key", "X-Request-Key"]),
}  # fmt: skip
MODES = {"link": ("link", "link"), "next": ("next:query.next", "next")}


def _flags(kind: str, api: LoopbackAPI, tmp_path: Path) -> tuple[list[str], list[str]]:
    flags, names = CREDENTIALS[kind]
    pool = tmp_path / "keys.txt"
    pool.write_text(f"pool-{SECRET}\n")
    filled = [f.format(token_url=api.url("/oauth/token"), pool=pool) for f in flags]
    return filled, names


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", CREDENTIALS)
async def test_a_next_page_on_another_origin_gets_none_of_the_user_s_credentials(
    two_host_api: LoopbackAPI, tmp_path: Path, kind: str, mode: str
):
    api = two_host_api
    flags, names = _flags(kind, api, tmp_path)
    paginate, param = MODES[mode]
    lines = b""
    for rid, target in (("away", api.url("/echo", host="127.0.0.2")), ("home", api.url("/echo"))):
        first = api.url("/echo") + f"?{param}=" + quote(target)
        line = {"id": rid, "url": first, "headers": {"X-Request-Key": f"line-{SECRET}"}}
        lines += orjson.dumps(line) + b"\n"
    result = await run_cli("run", "-", "-q", "--paginate", paginate, *flags, stdin=lines,
                           env={"FANFETCH_OAUTH2_CLIENT_SECRET": "s3cret-Pa55"})  # fmt: skip
    assert result.status == 0, result.stderr
    pages = {(r["id"], r["page"]): r["body"]["headers"] for r in result.records}
    for name in names:
        assert name in pages[("away", 1)], name  # the first page is the user's own
        assert name in pages[("home", 2)], name  # and so is a next page on the same origin
        assert name not in pages[("away", 2)], name
    assert pages[("away", 2)]["User-Agent"].startswith("fanfetch/")  # fanfetch's own go on


def test_an_origin_is_scheme_host_and_port_so_https_to_http_is_another_origin():
    from yarl import URL

    from fanfetch._core._urls import origin_of

    assert origin_of(URL("https://example.com/a")) != origin_of(URL("http://example.com:443/a"))
    assert origin_of(URL("https://example.com/a")) == origin_of(URL("https://example.com:443/b?x"))


async def test_a_next_link_with_user_and_password_is_refused_and_never_written(
    api: LoopbackAPI,
):
    hidden = api.url("/echo").replace("://", f"://eve:{SECRET}@")
    first = api.url("/link/" + base64.urlsafe_b64encode(hidden.encode()).decode())
    result = await run_cli("run", "-", "-q", "--paginate", "link", stdin=(first + "\n").encode())
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "pagination"
    assert "credentials" in record["error"]["message"]
    assert SECRET not in result.stdout.decode() and SECRET not in result.stderr
    assert api.log.hits["/echo"] == 0  # the link was never followed
    basic = base64.b64encode(f"eve:{SECRET}".encode()).decode()
    assert all(basic not in str(h) for h in api.log.headers)


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "2852039166", "0xa9.0xfe.0xa9.0xfe", "[fe80::1]",
             "[::ffff:169.254.1.1]"],
)  # fmt: skip
async def test_a_next_link_or_redirect_to_a_link_local_address_is_refused(
    api: LoopbackAPI, host: str
):
    """Every request goes through a loopback proxy, so that a refusal that failed would be
    seen there and no packet would leave the machine."""
    proxy = await ForwardProxy().start()
    try:
        metadata = refused_url(host, "/latest/meta-data/")
        page = api.url("/link/" + base64.urlsafe_b64encode(metadata.encode()).decode())
        redirect = api.url("/go/302?to=" + quote(metadata))
        lines = f"{page}\n{redirect}\n".encode()
        result = await run_cli("run", "-", "-q", "--paginate", "link", "--proxy", proxy.url,
                               stdin=lines)  # fmt: skip
        assert result.status == 1
        errors = {r["id"]: r["error"]["type"] for r in result.records}
        assert errors == {1: "pagination", 2: "invalid_request"}
        assert all("link-local" in r["error"]["message"] for r in result.records)
        assert len(proxy.asked) == 2 and not any(u.startswith(metadata) for u in proxy.asked)
    finally:
        await proxy.stop()


def test_link_local_addresses_are_known_in_every_spelling_a_resolver_reads():
    from fanfetch._core._urls import is_link_local

    for host in ("169.254.0.1", "169.254.169.254", "2852039166", "0xa9fea9fe", "[fe80::1]",
                 "fe80::abcd", "::ffff:169.254.1.1", "0251.0376.0251.0376"):  # fmt: skip
        assert is_link_local(host), host
    for host in ("127.0.0.1", "10.0.0.1", "example.com", "169.255.0.1", "[::1]", "0x7f.1",
                 "deadbeef", ""):  # fmt: skip
        assert not is_link_local(host), host
    assert not is_link_local(None)


@pytest.mark.parametrize("transport", ["lean", "aiohttp", "http2"])
async def test_a_host_that_can_be_no_dns_name_is_a_record_from_a_line_a_redirect_or_a_next_link(
    api: LoopbackAPI, transport: str
):
    """An empty or over-long label fails in the idna codec (a traceback that ended a lean
    run); from the input, a redirect or a next link it is a record, and the run goes on."""
    bad = [refused_url(host) for host in ("a..b.test", "a" * 64 + ".test")]
    redirects = [api.url("/go/302?to=" + quote(url)) for url in bad]
    links = [api.url("/link/" + base64.urlsafe_b64encode(u.encode()).decode()) for u in bad]
    lines = [*bad, *redirects, *links, api.url("/ok/last")]
    result = await run_cli("run", "-", "-q", "--paginate", "link", "--transport", transport,
                           stdin="".join(u + "\n" for u in lines).encode())  # fmt: skip
    assert result.status == 1 and "Traceback" not in result.stderr, result.stderr
    records = sorted(result.records, key=lambda r: r["id"])
    errors = [r["error"]["type"] if r["error"] else None for r in records]
    assert errors == ["invalid_request"] * 4 + ["pagination"] * 2 + [None]
    assert all("no DNS name" in r["error"]["message"] for r in records[:6])
