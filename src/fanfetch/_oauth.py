"""OAuth2 client credentials: a bearer token fetched, sent, and refreshed before it expires.

The client secret comes from the environment (``FANFETCH_OAUTH2_CLIENT_SECRET``), never from
the command line, which other users of the machine can read. However many requests wait for
a token, one refresh runs at a time; a token the API refuses (401) is dropped, so the next
attempt gets a fresh one. Neither the secret nor a token reaches records or messages: they
travel as headers, which records never hold and redirects to another origin never carry.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from urllib.parse import urlencode

import orjson
from yarl import URL

from ._exceptions import ConfigError, RequestError
from ._models import Request
from ._types import Clock, is_success

__all__ = ["SECRET_ENV", "AuthError", "OAuth2"]

SECRET_ENV = "FANFETCH_OAUTH2_CLIENT_SECRET"


class AuthError(RequestError):
    """``"auth"``: no token could be had from the token endpoint (tried again like a 5xx)."""

    type = "auth"
    retryable = True


class OAuth2:
    """Tokens from ``token_url`` for ``client_id``, through ``send`` (fanfetch's HTTP layer)."""

    def __init__(
        self,
        token_url: str,
        client_id: str | None,
        scope: str | None,
        send: object,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        secret = os.environ.get(SECRET_ENV)
        if not client_id:
            raise ConfigError("oauth2_client_id", client_id, "give --oauth2-client-id ID")
        if not secret:
            raise ConfigError(
                "oauth2_token_url", token_url, f"set the client secret in {SECRET_ENV}"
            )
        url = URL(token_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError("oauth2_token_url", token_url, "give an http(s) URL")
        self._url = url
        self._basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self._form = urlencode(
            {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        )
        self._send = send
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens fetched so far

    async def header(self) -> dict[str, str]:
        """The ``Authorization`` header of a token that is good for a while yet."""
        token = self._token
        if token is None or self._clock() >= self._renew_at:
            async with self._lock:  # one refresh at a time; the others wait for its token
                if self._token is None or self._clock() >= self._renew_at:
                    await self._fetch()
            token = self._token
        assert token is not None
        return {"Authorization": f"Bearer {token}"}

    def refused(self, header: dict[str, str]) -> None:
        """The API answered 401 to ``header``: that token is done with."""
        if self._token is not None and header.get("Authorization") == f"Bearer {self._token}":
            self._token = None

    async def _fetch(self) -> None:
        request = Request(str(self._url), method="POST", data=self._form, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {self._basic}",
        })  # fmt: skip
        request.target = self._url
        response = await self._send(request, 30.0)  # type: ignore[operator]
        if not is_success(response.status):
            raise AuthError(f"the token endpoint {self._url} answered {response.status}")
        try:
            answer = orjson.loads(response.content or b"")
            token, lifetime = answer["access_token"], float(answer.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AuthError(f"the token endpoint {self._url} sent no access_token") from None
        self._token = str(token)
        # renewed when a tenth of its life is left (at most a minute before it ends)
        self._renew_at = self._clock() + lifetime - min(60.0, lifetime / 10)
        self.fetched += 1
