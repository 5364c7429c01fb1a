"""TLS: certificates are verified by default; --insecure skips that, with a warning."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from tests.conftest import run_cli


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_url(ca: trustme.CA) -> AsyncIterator[str]:
    """An https server on 127.0.0.1 whose certificate no system store trusts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_an_untrusted_certificate_is_a_tls_error_asked_once_that_names_the_fixes(
    tls_url: str,
):
    result = await run_cli("run", "-", "-q", stdin=(tls_url + "\n").encode())
    assert result.status == 1
    [record] = result.records
    assert record["error"]["type"] == "tls"
    assert record["attempts"] == 1  # another attempt would meet the same certificate
    message = record["error"]["message"]
    assert "certificate" in message.lower()
    assert "--insecure" in message and "SSL_CERT_FILE" in message


async def test_a_ca_named_by_ssl_cert_file_is_trusted(tls_url: str, ca: trustme.CA, tmp_path):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    result = await run_cli(
        "run", "-", "-q", stdin=(tls_url + "\n").encode(), env={"SSL_CERT_FILE": str(bundle)}
    )
    assert result.status == 0, result.stderr
    assert result.records[0]["body"] == {"tls": True}


async def test_insecure_skips_verification_and_says_so(tls_url: str):
    result = await run_cli("run", "-", "-q", "--insecure", stdin=(tls_url + "\n").encode())
    assert result.status == 0
    assert result.records[0]["body"] == {"tls": True}
    assert "warning: --insecure" in result.stderr
