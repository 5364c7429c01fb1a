"""Networks as real jobs meet them: a forward proxy (--proxy, --trust-env), private CAs
(--cacert), client certificates (--cert/--key), basic auth (--user); secrets never echoed."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import trustme
from aiohttp import web

from tests.conftest import run_cli
from tests.servers import ForwardProxy, LoopbackAPI

SECRET = "s3cret-Pa55"  # the proxy's, the --user and the OAuth2 client's


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    server = await ForwardProxy().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def locked_proxy() -> AsyncIterator[ForwardProxy]:
    server = await ForwardProxy(credentials=f"bob:{SECRET}").start()
    try:
        yield server
    finally:
        await server.stop()


def urls(api: LoopbackAPI, n: int, host: str | None = None) -> bytes:
    return "".join(api.url(f"/ok/{i}", host) + "\n" for i in range(n)).encode()


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        text = text.decode() if isinstance(text, bytes) else text
        assert (
            SECRET not in text and base64.b64encode(f"bob:{SECRET}".encode()).decode() not in text
        )


async def test_every_request_goes_through_the_proxy_given(api: LoopbackAPI, proxy: ForwardProxy):
    result = await run_cli("run", "-", "-q", "--proxy", proxy.url, stdin=urls(api, 5))
    assert result.status == 0, result.stderr
    assert len(proxy.seen) == 5 == sum(api.log.hits.values())


async def test_proxy_credentials_reach_the_proxy_only_and_are_never_echoed(
    api: LoopbackAPI, locked_proxy: ForwardProxy, tmp_path: Path
):
    summary = tmp_path / "summary.json"
    proxy_url = locked_proxy.url.replace("://", f"://bob:{SECRET}@")
    result = await run_cli("run", "-", "--proxy", proxy_url, "--summary-json", str(summary),
                           stdin=urls(api, 3))  # fmt: skip
    assert result.status == 0, result.stderr
    assert len(locked_proxy.seen) == 3 and locked_proxy.refused == 0
    assert all("Proxy-Authorization" not in h for h in api.log.headers)  # not to the origin
    assert_no_secret(result.stdout, result.stderr, summary.read_text())
    # a proxy that is down: the error records and messages name it without its password
    await locked_proxy.stop()
    down = await run_cli("run", "-", "--proxy", proxy_url, "--retries", "0", stdin=urls(api, 2))
    assert down.status == 1 and all(r["error"]["type"] == "connection" for r in down.records)
    assert_no_secret(down.stdout, down.stderr)


async def test_a_proxy_that_wants_credentials_answers_407_without_them(
    api: LoopbackAPI, locked_proxy: ForwardProxy
):
    result = await run_cli("run", "-", "-q", "--proxy", locked_proxy.url, stdin=urls(api, 2))
    assert result.status == 1
    assert [r["status"] for r in result.records] == [407, 407]
    assert sum(api.log.hits.values()) == 0


async def test_the_environment_s_proxy_is_used_only_with_trust_env(
    two_host_api: LoopbackAPI, proxy: ForwardProxy
):
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.2"}
    lines = urls(two_host_api, 3, "127.0.0.1") + urls(two_host_api, 2, "127.0.0.2")
    ignored = await run_cli("run", "-", "-q", stdin=lines, env=env)
    assert ignored.status == 0 and proxy.seen == []  # the default: the job, not the environment
    trusted = await run_cli("run", "-", "-q", "--trust-env", stdin=lines, env=env)
    assert trusted.status == 0, trusted.stderr
    assert len(proxy.seen) == 3 and all("127.0.0.1" in u for u in proxy.seen)  # NO_PROXY held


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [("127.0.0.0/30", {"127.0.0.1", "127.0.0.2"}), ("127.0.0.2:{port}", {"127.0.0.2"}),
     ("127.0.0.2:1", set()), ("[127.0.0.1]", {"127.0.0.1"}), ("*", {"127.0.0.1", "127.0.0.2"}),
     ("10.0.0.0/8, 127.0.0.1", {"127.0.0.1"})],
)  # fmt: skip
async def test_no_proxy_takes_networks_ports_and_brackets_as_curl_does(
    two_host_api: LoopbackAPI, proxy: ForwardProxy, transport: str, no_proxy: str,
    direct: set[str],
):  # fmt: skip
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy.format(port=two_host_api.port)}
    lines = urls(two_host_api, 2, "127.0.0.1") + urls(two_host_api, 2, "127.0.0.2")
    result = await run_cli("run", "-", "-q", "--trust-env", "--transport", transport,
                           stdin=lines, env=env)  # fmt: skip
    assert result.status == 0, result.stderr
    proxied = {u.split("//")[1].split(":")[0] for u in proxy.seen}
    assert proxied == {"127.0.0.1", "127.0.0.2"} - direct


def test_no_proxy_knows_ipv6_in_brackets_and_names_with_their_subdomains():
    from fanfetch._core._urls import bypasses_proxy

    assert bypasses_proxy("::1", 80, "[::1]") and bypasses_proxy("[::1]", 8080, "[::1]:8080")
    assert bypasses_proxy("::1", 80, "::1/128") and not bypasses_proxy("::2", 80, "[::1]")
    assert bypasses_proxy("api.example.test", 443, ".example.test")
    assert bypasses_proxy("example.test", 443, "example.test")
    assert not bypasses_proxy("badexample.test", 443, "example.test")
    assert not bypasses_proxy("example.test", 443, "example.test:8443")


async def test_a_bad_proxy_url_is_a_usage_error_that_does_not_echo_its_password():
    result = await run_cli("run", "-", "--proxy", f"ftp://bob:{SECRET}@127.0.0.1:1080",
                           stdin=b"http://127.0.0.1:9/\n")  # fmt: skip
    assert result.status == 2 and "socks5://" in result.stderr
    assert_no_secret(result.stderr)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def _https(context: ssl.SSLContext) -> tuple[web.AppRunner, str]:
    async def hello(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        return web.json_response({"tls": True, "client": bool(peer)})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}/"


async def test_cacert_trusts_a_private_ca_and_without_it_the_error_says_so(
    ca: trustme.CA, tmp_path: Path
):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner, url = await _https(context)
    try:
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        refused = await run_cli("run", "-", "-q", stdin=(url + "\n").encode())
        assert refused.status == 1 and "--cacert" in refused.records[0]["error"]["message"]
        trusted = await run_cli(
            "run", "-", "-q", "--cacert", str(bundle), stdin=(url + "\n").encode()
        )
        assert trusted.status == 0, trusted.stderr
        assert trusted.records[0]["body"]["tls"] is True
    finally:
        await runner.cleanup()


async def test_a_server_that_wants_a_client_certificate_gets_the_one_given(
    ca: trustme.CA, tmp_path: Path
):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    runner, url = await _https(context)
    try:
        bundle, client = tmp_path / "ca.pem", tmp_path / "client.pem"
        ca.cert_pem.write_to_path(str(bundle))
        issued = ca.issue_cert("fanfetch-client@example.test")
        issued.private_key_and_cert_chain_pem.write_to_path(str(client))
        stdin = (url + "\n").encode()
        without = await run_cli("run", "-", "-q", "--cacert", str(bundle), "--retries", "0",
                                stdin=stdin)  # fmt: skip
        assert without.status == 1 and without.records[0]["error"]["type"] in ("tls", "connection")
        mutual = await run_cli("run", "-", "-q", "--cacert", str(bundle), "--cert", str(client),
                               stdin=stdin)  # fmt: skip
        assert mutual.status == 0, mutual.stderr
        assert mutual.records[0]["body"] == {"tls": True, "client": True}
    finally:
        await runner.cleanup()


async def test_https_goes_through_the_proxy_in_a_tunnel_with_its_credentials(
    ca: trustme.CA, tmp_path: Path, locked_proxy: ForwardProxy
):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner, url = await _https(context)
    try:
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        proxy_url = locked_proxy.url.replace("://", f"://bob:{SECRET}@")
        stdin = "".join(f"{url}?n={i}\n" for i in range(3)).encode()
        result = await run_cli("run", "-", "--proxy", proxy_url, "--cacert", str(bundle),
                               stdin=stdin)  # fmt: skip
        assert result.status == 0, result.stderr
        assert all(r["body"]["tls"] is True for r in result.records)
        port = url.split(":")[2].rstrip("/")
        assert locked_proxy.seen and set(locked_proxy.seen) == {f"CONNECT 127.0.0.1:{port}"}
        assert locked_proxy.refused == 0
        assert_no_secret(result.stdout, result.stderr)
        refused = await run_cli("run", "-", "--proxy", locked_proxy.url, "--cacert",
                                str(bundle), stdin=stdin)  # fmt: skip
        assert refused.status == 1
        assert all("407" in r["error"]["message"] for r in refused.records)
        assert all(r["attempts"] == 1 for r in refused.records)  # asking again will not help
    finally:
        await runner.cleanup()


async def test_missing_certificate_files_are_usage_errors(tmp_path: Path):
    for flag in ("--cacert", "--cert", "--key"):
        result = await run_cli("run", "-", flag, str(tmp_path / "none.pem"), stdin=b"")
        assert result.status == 2 and flag in result.stderr and "no such file" in result.stderr


async def test_user_sends_basic_auth_and_never_echoes_the_password(
    api: LoopbackAPI, tmp_path: Path
):
    summary = tmp_path / "summary.json"
    result = await run_cli("run", "-", "--user", f"bob:{SECRET}", "--summary-json", str(summary),
                           stdin=(api.url("/echo") + "\n").encode())  # fmt: skip
    assert result.status == 0, result.stderr
    wanted = "Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()
    assert api.log.headers[0]["Authorization"] == wanted
    record = dict(result.records[0])
    record.pop(
        "body"
    )  # /echo echoes the request's headers, as a server may: the record is its body
    assert_no_secret(str(record), result.stderr, summary.read_text())
    bad = await run_cli("run", "-", "--user", SECRET, stdin=b"")
    assert bad.status == 2 and "USER:PASSWORD" in bad.stderr
    assert_no_secret(bad.stderr)


async def test_a_form_field_is_sent_as_an_urlencoded_body(api: LoopbackAPI):
    line = json.dumps({"url": api.url("/echo"), "method": "POST", "form": {"a": 1, "b": "x y&z"}})
    result = await run_cli("run", "-", "-q", stdin=(line + "\n").encode())
    assert result.status == 0, result.stderr
    body = result.records[0]["body"]
    assert body["body"] == "a=1&b=x+y%26z"
    assert body["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    both = json.dumps({"url": api.url("/echo"), "form": {"a": 1}, "json": {"a": 1}})
    refused = await run_cli("run", "-", "-q", stdin=(both + "\n").encode())
    assert refused.records[0]["error"]["type"] == "invalid_request"


async def test_cookies_are_kept_with_cookies_and_go_back_only_where_they_came_from(
    two_host_api: LoopbackAPI,
):
    lines = (
        two_host_api.url("/login", "127.0.0.1") + "\n"
        + two_host_api.url("/whoami", "127.0.0.2") + "\n"
    ).encode()  # fmt: skip
    independent = await run_cli("run", "-", "-q", "-c", "1", "--ordered", stdin=lines)
    assert [r["body"]["session"] for r in independent.records] == [None, None]
    kept = await run_cli("run", "-", "-q", "-c", "1", "--ordered", "--cookies", stdin=lines)
    assert kept.status == 0, kept.stderr
    # the login's redirect carried the cookie back to its own host; the other host got none
    assert [r["body"]["session"] for r in kept.records] == ["token-42", None]


@pytest.mark.slow
async def test_oauth2_tokens_are_fetched_one_at_a_time_and_renewed_across_their_lifetimes(
    api: LoopbackAPI, tmp_path: Path
):
    """1-second tokens (that the API refuses after 0.8 s) over a run of about 3 s: every
    request ok with no retries at all, so each refused token cost no retry."""
    api.hold_seconds = 0.05
    lines = "".join(api.url(f"/private/{i}") + "\n" for i in range(300)).encode()
    summary = tmp_path / "summary.json"
    result = await run_cli(
        "run", "-", "-c", "5", "--retries", "0", "--oauth2-token-url", api.url("/oauth/token"),
        "--oauth2-client-id", "app", "--summary-json", str(summary), stdin=lines,
        env={"FANFETCH_OAUTH2_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert result.status == 0, result.stderr[-2000:]
    assert all(r["ok"] for r in result.records) and len(result.records) == 300
    assert api.token_max_in_flight == 1  # one refresh at a time
    assert 2 <= len(api.tokens) <= 8  # about run time / lifetime, not one per request
    for token in api.tokens:
        assert token not in result.stdout.decode() and token not in result.stderr
    assert_no_secret(result.stdout, result.stderr, summary.read_text())


async def test_the_token_request_carries_only_what_oauth2_needs(api: LoopbackAPI):
    lines = "".join(api.url(f"/private/{i}") + "\n" for i in range(5)).encode()
    result = await run_cli(
        "run", "-", "-q", "--header", f"X-Api-Key: flag-{SECRET}", "--header", "Cookie: a=b",
        "--oauth2-token-url", api.url("/oauth/token"), "--oauth2-client-id", "app",
        stdin=lines, env={"FANFETCH_OAUTH2_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert all(r["ok"] for r in result.records)
    [asked] = api.token_headers
    assert {k.lower() for k in asked} <= {
        "host", "authorization", "content-type", "content-length", "accept",
        "accept-encoding", "user-agent",
    }, asked  # fmt: skip
    assert asked["Authorization"].startswith("Basic ")  # the client's, nothing of the run's
    assert {h.get("X-Api-Key") for h in api.log.headers if "Bearer" in h.get("Authorization", "")} \
        == {f"flag-{SECRET}"}  # the API itself still gets the run's headers  # fmt: skip


async def test_a_secret_in_the_token_url_s_query_never_reaches_a_record_or_message(
    api: LoopbackAPI,
):
    token_url = api.url(f"/status/500?client_secret={SECRET}&api_key={SECRET}")
    result = await run_cli(
        "run", "-", "--retries", "0", "--oauth2-token-url", token_url,
        "--oauth2-client-id", "app", stdin=(api.url("/private/1") + "\n").encode(),
        env={"FANFETCH_OAUTH2_CLIENT_SECRET": "other"},
    )  # fmt: skip
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "auth" and "client_secret=***" in record["error"]["message"]
    assert_no_secret(result.stdout, result.stderr)


async def test_a_hanging_token_endpoint_costs_the_requests_waiting_one_timeout_together(
    api: LoopbackAPI,
):
    """Each token request is bounded by --timeout, and one refresh serves every request
    that waits for it: 12 requests at -c 6 ask for a token about twice, not 12 times in turn
    (30 s each, whatever --timeout said)."""
    lines = "".join(api.url(f"/private/{i}") + "\n" for i in range(12)).encode()
    result = await run_cli(
        "run", "-", "-q", "-c", "6", "--retries", "0", "--timeout", "0.3",
        "--oauth2-token-url", api.url("/hang/token"), "--oauth2-client-id", "app",
        stdin=lines, env={"FANFETCH_OAUTH2_CLIENT_SECRET": SECRET}, timeout=60,
    )  # fmt: skip
    assert result.status == 1
    assert [r["error"]["type"] for r in result.records] == ["auth"] * 12
    assert all("timed out" in r["error"]["message"] for r in result.records), [
        r["error"] for r in result.records
    ]
    assert 1 <= api.log.hits["/hang/token"] <= 4
    assert api.log.hits.get("/private/0", 0) == 0  # no request went without its token


async def test_oauth2_needs_its_secret_from_the_environment(api: LoopbackAPI):
    stdin = (api.url("/ok/1") + "\n").encode()
    result = await run_cli("run", "-", "--oauth2-token-url", api.url("/oauth/token"),
                           "--oauth2-client-id", "app", stdin=stdin)  # fmt: skip
    assert result.status == 2 and "FANFETCH_OAUTH2_CLIENT_SECRET" in result.stderr
    assert sum(api.log.hits.values()) == 0


@pytest.mark.slow
async def test_cost_from_an_expression_keeps_starts_under_the_budget(api: LoopbackAPI):
    lines = [json.dumps({"url": api.url("/echo"), "method": "POST", "json": {"max_tokens": 500}})
             for _ in range(8)]  # fmt: skip
    lines.append(json.dumps({"url": api.url("/echo"), "json": {"max_tokens": "many"}}))
    result = await run_cli("run", "-", "-q", "--budget", "2000/s", "--cost", "json.max_tokens",
                           stdin="\n".join(lines).encode() + b"\n")  # fmt: skip
    assert result.status == 1
    records = result.records
    assert [r["error"]["type"] for r in records if not r["ok"]] == ["invalid_request"]
    times = sorted(api.log.times["/echo"])
    assert len(times) == 8
    # 500 a request against 2,000 a second (one request's cost of slack): at most 5 a second
    assert all(sum(1 for u in times if t <= u < t + 1.0) <= 5 for t in times)


@pytest.mark.slow
async def test_a_key_pool_keeps_each_key_under_its_rate_and_rests_a_throttled_key_alone(
    api: LoopbackAPI, tmp_path: Path
):
    keys = {f"k{i}-{SECRET}": "ok" for i in range(3)}
    first, second, third = keys
    keys[second] = "429 once"
    api.keys = dict(keys)
    pool = tmp_path / "keys.txt"
    pool.write_text("\n".join(keys) + "\n")
    lines = "".join(api.url(f"/keyed/{i}") + "\n" for i in range(60)).encode()
    result = await run_cli(
        "run", "-", "--key-pool", str(pool), "--key-header", "X-Api-Key: {key}",
        "--rate-per-key", "10/s", "-c", "6", stdin=lines,
    )  # fmt: skip
    assert result.status == 0, result.stderr
    assert all(r["ok"] for r in result.records) and len(result.records) == 60
    assert {r["key_index"] for r in result.records} == {0, 1, 2}
    for key in keys:  # no key over its rate (10/s, one start a 0.1 s) in any second
        times = sorted(api.key_times[key])
        assert all(sum(1 for u in times if t <= u < t + 1.0) <= 11 for t in times), key
    paused = api.key_paused_at
    during = [t for key in (first, third) for t in api.key_times[key] if paused < t < paused + 0.9]
    assert len(during) >= 8  # the other keys went on during the pause...
    assert [t for t in api.key_times[second] if paused + 0.05 < t < paused + 0.95] == []  # not it
    assert_no_secret(result.stdout, result.stderr)


async def test_a_key_refused_for_three_different_urls_leaves_the_pool_and_costs_no_retry(
    api: LoopbackAPI, tmp_path: Path
):
    api.keys = {"good": "ok", f"bad-{SECRET}": "refused"}
    pool = tmp_path / "keys.txt"
    pool.write_text(f"bad-{SECRET}\ngood\n")
    lines = "".join(api.url(f"/keyed/{i}") + "\n" for i in range(10)).encode()
    result = await run_cli("run", "-", "-q", "-c", "1", "--key-pool", str(pool),
                           "--key-header", "X-Api-Key: {key}", "--retries", "0",
                           stdin=lines)  # fmt: skip
    assert result.status == 0, result.stderr
    assert {r["key_index"] for r in result.records} == {1}
    assert "key 0 of the pool was refused (401) for 3 different URLs" in result.stderr
    assert len(api.key_times[f"bad-{SECRET}"]) == 3  # then it was out of the pool
    assert_no_secret(result.stdout, result.stderr)


async def test_one_url_that_refuses_every_key_does_not_empty_the_pool(
    api: LoopbackAPI, tmp_path: Path
):
    """A resource the keys may not see is no bad key: each key is tried once for it, its
    answer stands, and the pool goes on for the others (it used to empty the pool)."""
    api.keys = {"k1": "ok", "k2": "ok"}
    pool = tmp_path / "keys.txt"
    pool.write_text("k1\nk2\n")
    lines = (api.url("/status/403") + "\n") * 4 + "".join(
        api.url(f"/keyed/{i}") + "\n" for i in range(6)
    )
    result = await run_cli("run", "-", "-q", "-c", "1", "--key-pool", str(pool),
                           "--key-header", "X-Api-Key: {key}", "--retries", "0",
                           "--include-attempts", stdin=lines.encode())  # fmt: skip
    assert result.status == 1
    records = sorted(result.records, key=lambda r: r["id"])
    assert [r["status"] for r in records] == [403] * 4 + [200] * 6
    assert all(len(r["history"]) == 2 for r in records[:4])  # each key once, then it stands
    assert "taken out of the pool" not in result.stderr


async def test_a_request_that_no_key_was_left_for_says_it_was_never_sent(
    api: LoopbackAPI, tmp_path: Path
):
    api.keys = {"bad": "refused"}
    pool = tmp_path / "keys.txt"
    pool.write_text("bad\n")
    lines = "".join(api.url(f"/keyed/{i}") + "\n" for i in range(5)).encode()
    result = await run_cli("run", "-", "-q", "-c", "1", "--key-pool", str(pool), "--key-header",
                           "X-Api-Key: {key}", "--retries", "0", stdin=lines)  # fmt: skip
    records = sorted(result.records, key=lambda r: r["id"])
    assert [r["status"] for r in records[:3]] == [401] * 3  # refused for 3 URLs: retired
    assert [(r["error"]["type"], r["attempts"], r["started_at"]) for r in records[3:]] == [
        ("no_key", 0, None)
    ] * 2
    assert len(api.key_times["bad"]) == 3


@pytest.mark.slow
async def test_usage_corrects_the_budget_with_what_each_answer_really_cost(api: LoopbackAPI):
    """Charged 100 at the start (--cost), each answer says it cost 1,000: against 5,000 a
    second, the run slows to what was really spent."""
    lines = [json.dumps({"url": api.url(f"/llm/{i}") + "?used=1000", "cost": 100})
             for i in range(10)]  # fmt: skip
    stdin = "\n".join(lines).encode() + b"\n"
    result = await run_cli("run", "-", "-q", "-c", "1", "--budget", "5000/s", "--usage",
                           "usage.total_tokens", stdin=stdin)  # fmt: skip
    assert result.status == 0, result.stderr
    times = sorted(t for path, ts in api.log.times.items() if path.startswith("/llm") for t in ts)
    assert len(times) == 10
    # 1,000 a request against 5,000 a second: at most 6 in any second (one's cost of slack);
    # charged only the 100 the lines say, all ten would have gone within a few milliseconds
    assert all(sum(1 for u in times if t <= u < t + 1.0) <= 6 for t in times)


async def test_a_socks5_proxy_carries_every_connection_and_its_password_stays_secret(
    api: LoopbackAPI,
):
    from tests.servers import Socks5Proxy

    socks = await Socks5Proxy(credentials=("bob", SECRET)).start()
    try:
        proxy_url = f"socks5://bob:{SECRET}@127.0.0.1:{socks.port}"
        result = await run_cli("run", "-", "--proxy", proxy_url, stdin=urls(api, 4))
        assert result.status == 0, result.stderr
        assert socks.connected and socks.refused == 0  # kept-alive connections: fewer than 4
        assert sum(api.log.hits.values()) == 4
        assert_no_secret(result.stdout, result.stderr)
        wrong = await run_cli("run", "-", "-q", "--retries", "0", "--proxy",
                              proxy_url.replace(SECRET, "wrong"), stdin=urls(api, 1))  # fmt: skip
        assert wrong.status == 1 and wrong.records[0]["error"]["type"] == "connection"
        assert socks.refused == 1
    finally:
        await socks.stop()


async def test_a_socks_proxy_without_its_extra_is_a_one_line_error(tmp_path: Path):
    code = (
        "import sys; sys.modules['aiohttp_socks'] = None\n"
        "from fanfetch._cli._main import main\n"
        "main(['run', '-', '--proxy', 'socks5://127.0.0.1:1080'])"
    )
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "fanfetch: error: a socks proxy needs aiohttp-socks: pip install 'fanfetch[socks]'"
    ]


async def test_a_token_that_says_it_lives_no_time_is_kept_until_the_api_refuses_it(
    monkeypatch: pytest.MonkeyPatch,
):
    """expires_in <= 0 would have made every request fetch a token of its own (fake clock)."""
    from fanfetch._engine._oauth import SECRET_ENV, OAuth2
    from fanfetch._net._transports._base import Response

    asked = []

    async def send(request: object, timeout: float | None) -> Response:
        asked.append(timeout)
        return Response(200, orjson.dumps({"access_token": f"t{len(asked)}", "expires_in": 0}))

    monkeypatch.setenv(SECRET_ENV, SECRET)
    oauth = OAuth2("http://127.0.0.1:9/token", "app", None, send, timeout=2.5,
                   clock=lambda: 1000.0)  # fmt: skip
    first = await oauth.header()
    assert [await oauth.header() for _ in range(5)] == [first] * 5
    assert asked == [2.5]  # one token request, bounded by the run's timeout
    oauth.refused(first)
    assert await oauth.header() == {"Authorization": "Bearer t2"}  # a 401: a new one


async def test_credential_query_values_are_masked_in_records_and_redact_param_adds_names(
    api: LoopbackAPI, tmp_path: Path
):
    query = f"?api_key={SECRET}&Token={SECRET}&sig={SECRET}&session={SECRET}&design=kept&page=2"
    redirected = api.url("/go/302?to=" + quote(api.url("/ok/2") + f"?access_token={SECRET}"))
    lines = f"{api.url('/ok/1')}{query}\n{redirected}\n".encode()
    summary = tmp_path / "summary.json"
    result = await run_cli("run", "-", "--redact-param", "Session", "--summary-json",
                           str(summary), stdin=lines)  # fmt: skip
    assert result.status == 0, result.stderr
    records = {r["id"]: r for r in result.records}
    assert records[1]["url"] == api.url("/ok/1") + (
        "?api_key=***&Token=***&sig=***&session=***&design=kept&page=2"
    )
    assert records[2]["final_url"] == api.url("/ok/2") + "?access_token=***"
    del records[2]["url"]  # the redirecting URL's own ?to= holds it, as this test wrote it
    assert_no_secret(orjson.dumps(list(records.values())), result.stderr, summary.read_text())
    plain = await run_cli("run", "-", "-q", stdin=f"{api.url('/ok/1')}{query}\n".encode())
    [record] = plain.records
    assert f"session={SECRET}" in record["url"]  # not a credential's name unless asked


def test_every_credential_name_is_masked_whatever_its_case():
    from fanfetch._core._redact import SECRET_PARAMS, mask_query

    for name in sorted(SECRET_PARAMS):
        for spelled in (name, name.upper()):
            assert mask_query(f"http://example.com/?a=1&{spelled}=s3cret") == (
                f"http://example.com/?a=1&{spelled}=***"
            ), spelled
    assert (
        mask_query("http://example.com/?design=x&page=2") == "http://example.com/?design=x&page=2"
    )
