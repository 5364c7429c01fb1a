"""Undoing ``Content-Encoding`` (gzip, deflate, br, zstd) a piece at a time, never past a cap.

A transport hands the body on as it came; the body cap is applied to what decoding gives,
and decoding asks for at most what the cap leaves room for. So a gzip bomb (50 KB that
expands to 50 MB) costs no more memory than the cap, wherever in the stream it goes off.
"""

from __future__ import annotations

import zlib
from typing import Protocol

__all__ = ["ACCEPT_ENCODING", "IDENTITY", "Decoder", "UnknownEncoding", "decoder_for"]


class UnknownEncoding(ValueError):
    """A ``Content-Encoding`` this machine cannot undo."""


class Decoder(Protocol):
    """Decodes a body's pieces in turn, giving at most ``room`` bytes a call."""

    def decode(self, data: bytes, room: int) -> bytes:
        """What ``data`` (and what is still pending) decodes to, at most ``room`` bytes of it.
        Raises ``ValueError`` on data that does not decode."""
        ...

    @property
    def pending(self) -> bool:
        """Whether more output can come without more input (call ``decode(b"", room)``)."""
        ...


class _Identity:
    """A body sent as it is: its pieces pass through (a transport reads them 64 KiB at a
    time, so ``room`` needs no enforcing here)."""

    pending = False

    def decode(self, data: bytes, room: int) -> bytes:
        return data


IDENTITY: Decoder = _Identity()


class _Zlib:
    """gzip (concatenated members too) and deflate (with or without the zlib header)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._obj: zlib._Decompress | None = None
        self._tail = b""

    def _new(self, first: int) -> zlib._Decompress:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # RFC 9110 says deflate means the zlib format; some servers send raw deflate
        return zlib.decompressobj(zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS)

    @property
    def pending(self) -> bool:
        return bool(self._tail)

    def decode(self, data: bytes, room: int) -> bytes:
        data = self._tail + data if self._tail else data
        out = b""
        try:
            while data and len(out) < room:
                if self._obj is None:
                    self._obj = self._new(data[0])
                out += self._obj.decompress(data, room - len(out))
                data = self._obj.unconsumed_tail
                if self._obj.eof:  # the end of a gzip member: another may follow
                    data, self._obj = self._obj.unused_data, None
        except zlib.error as exc:
            raise ValueError(str(exc)) from None
        self._tail = data
        return out


class _Brotli:
    """br. Its output limit is loose (it grows its buffer 32 KB at a time), and more output
    may wait even when it says it can take more input: so a call that filled the room is
    taken to mean that more is pending."""

    def __init__(self) -> None:
        try:
            import brotli
        except ImportError:
            raise UnknownEncoding("br (pip install Brotli)") from None
        self._error = brotli.error
        self._obj = brotli.Decompressor()
        self._full = False

    @property
    def pending(self) -> bool:
        return self._full or not self._obj.can_accept_more_data()

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            if data and self.pending:  # it must give out what it holds before taking more
                out: bytes = self._obj.process(b"", output_buffer_limit=room)
                if len(out) >= room or not self._obj.can_accept_more_data():
                    raise ValueError("brotli: input came while output was pending")
                out += self._obj.process(data, output_buffer_limit=room - len(out))
            else:
                out = self._obj.process(data, output_buffer_limit=room)
        except self._error as exc:
            raise ValueError(str(exc)) from None
        self._full = len(out) >= room
        return out


class _Zstd:
    def __init__(self) -> None:
        try:
            from compression.zstd import (  # type: ignore[import-not-found]
                ZstdDecompressor,
                ZstdError,
            )
        except ImportError:
            try:
                from backports.zstd import ZstdDecompressor, ZstdError
            except ImportError:
                raise UnknownEncoding("zstd (pip install backports.zstd)") from None
        self._new = ZstdDecompressor
        self._error = ZstdError
        self._obj = ZstdDecompressor()
        self._tail = b""  # the start of the next frame

    @property
    def pending(self) -> bool:
        return bool(self._tail) or not self._obj.needs_input

    def decode(self, data: bytes, room: int) -> bytes:
        data = self._tail + data if self._tail else data
        self._tail = b""
        out = b""
        try:
            while len(out) < room:
                out += self._obj.decompress(data, room - len(out))
                data = b""
                if self._obj.eof:  # the end of a frame: another may follow
                    self._tail, self._obj = self._obj.unused_data, self._new()
                    if not self._tail:
                        break
                    data, self._tail = self._tail, b""
                elif self._obj.needs_input:
                    break
        except (self._error, EOFError) as exc:
            raise ValueError(str(exc)) from None
        return out


def decoder_for(encoding: str) -> Decoder | None:
    """The decoder for a ``Content-Encoding`` value; None when the body is as it is."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):
        return _Zlib(name)
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    raise UnknownEncoding(name)


def _accept_encoding() -> str:
    names = ["gzip", "deflate"]
    for name in ("br", "zstd"):
        try:
            decoder_for(name)
        except UnknownEncoding:
            continue
        names.append(name)
    return ", ".join(names)


ACCEPT_ENCODING = _accept_encoding()
"""What to ask servers for: the encodings this machine can undo."""
