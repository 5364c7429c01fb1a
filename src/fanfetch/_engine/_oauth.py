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
import math
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import orjson
from yarl import URL

from .._core._exceptions import AuthError, ConfigError, RequestError
from .._core._models import Request
from .._core._redact import redact
from .._core._types import Clock, is_success
from ._hooks import AGAIN

if TYPE_CHECKING:
    from .._net._http import Response
    from ._hooks import Try, Verdict

__all__ = ["SECRET_ENV", "OAuth2"]

SECRET_ENV = "FANFETCH_OAUTH2_CLIENT_SECRET"


class OAuth2:
    """Tokens from ``token_url`` for ``client_id``, through ``send`` (fanfetch's HTTP layer)."""

    def __init__(
        self,
        token_url: str,
        client_id: str | None,
        scope: str | None,
        send: object,
        *,
        timeout: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """``send(request, timeout)`` makes one token request as fanfetch's HTTP layer does,
        with none of the run's own headers; each is bounded by ``timeout`` (``--timeout``)."""
        secret = os.environ.get(SECRET_ENV)
        if not client_id:
            raise ConfigError("oauth2_client_id", client_id, "give `oauth2_client_id` too")
        if not secret:
            raise ConfigError(
                "oauth2_token_url", redact(token_url), f"set the client secret in {SECRET_ENV}"
            )
        url = URL(token_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError("oauth2_token_url", redact(token_url), "give an http(s) URL")
        self._url = url
        self._basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self._form = urlencode(
            {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        )
        self._shown = redact(str(url))  # the URL as messages may show it (no query secret)
        self._send = send
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._refresh: asyncio.Future[None] | None = None
        self.fetched = 0  # tokens fetched so far

    async def header(self) -> dict[str, str]:
        """The ``Authorization`` header of a token that is good for a while yet.

        However many requests need a token at once, one refresh runs, and its outcome is
        theirs: a token, or its ``AuthError`` (a hanging endpoint costs them one
        ``--timeout`` together, not one each in turn)."""
        token = self._token
        if token is None or self._clock() >= self._renew_at:
            refresh = self._refresh
            if refresh is None:
                # A future of its own (as the lean transport's name look-ups): it is shared,
                # and outlives any one asker's cancellation.
                refresh = self._refresh = asyncio.ensure_future(self._fetch())
                refresh.add_done_callback(self._refreshed)
            await asyncio.shield(refresh)
            token = self._token
        assert token is not None
        return {"Authorization": f"Bearer {token}"}

    def _refreshed(self, done: asyncio.Future[None]) -> None:
        self._refresh = None
        if not done.cancelled():
            done.exception()  # retrieved: when every asker was cancelled, none would

    async def before(self, attempt: Try) -> None:
        """The attempt hook: each attempt carries a good token."""
        attempt.add_headers(await self.header())

    async def after(self, attempt: Try, response: Response) -> Verdict:
        """A 401 to the first try's token: that token dropped, the attempt made again with a
        new one, no retry spent (once: a second 401 is the API's answer)."""
        if response.status == 401 and attempt.headers is not None and attempt.free == 0:
            self.refused(attempt.headers)
            return AGAIN
        return None

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
        try:
            response = await self._send(request, self._timeout)  # type: ignore[operator]
        except RequestError as exc:
            raise AuthError(f"no token from {self._shown}: {exc}") from None
        if not is_success(response.status):
            raise AuthError(f"the token endpoint {self._shown} answered {response.status}")
        try:
            answer = orjson.loads(response.content or b"")
            token, lifetime = answer["access_token"], float(answer.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AuthError(f"the token endpoint {self._shown} sent no access_token") from None
        self._token = str(token)
        if lifetime > 0:  # renewed when a tenth of its life is left (a minute at most)
            self._renew_at = self._clock() + lifetime - min(60.0, lifetime / 10)
        else:  # no lifetime worth the name: kept until the API refuses it (a 401)
            self._renew_at = math.inf
        self.fetched += 1
