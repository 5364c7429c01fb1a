"""Undoing Content-Encoding a piece at a time: the output never exceeds the room asked for."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from backports import zstd

from fanfetch._net._decoding import ACCEPT_ENCODING, UnknownEncoding, decoder_for

PLAIN = b"".join(b"line %d of a body that compresses well\n" % i for i in range(3_000))

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data, wbits=-15),  # sent as "deflate" by some
    "br": brotli.compress,
    "zstd": zstd.compress,
}


def decode_all(encoding: str, body: bytes, *, piece: int, room: int) -> tuple[bytes, int]:
    decoder = decoder_for("deflate" if encoding == "raw-deflate" else encoding)
    assert decoder is not None
    out, biggest = [], 0
    for start in range(0, len(body), piece):
        data = body[start : start + piece]
        while True:
            chunk = decoder.decode(data, room)
            data = b""
            biggest = max(biggest, len(chunk))
            out.append(chunk)
            if not decoder.pending:
                break
    return b"".join(out), biggest


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_every_encoding_decodes_whole_in_pieces_never_over_the_room(encoding: str, piece: int):
    body = ENCODERS[encoding](PLAIN)
    decoded, biggest = decode_all(encoding, body, piece=piece, room=10_000)
    assert decoded == PLAIN
    # brotli grows its output 32 KB at a time: its room is a loose bound, but still a bound
    assert biggest <= (32 * 1024 if encoding == "br" else 10_000)


def test_concatenated_gzip_members_and_zstd_frames_decode_as_one_body():
    for encoding, compress in (("gzip", gzip.compress), ("zstd", zstd.compress)):
        body = compress(b"first half, ") + compress(b"second half")
        decoded, _ = decode_all(encoding, body, piece=5, room=100)
        assert decoded == b"first half, second half", encoding


def test_a_bomb_gives_no_more_than_the_room_asked_for():
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 KB that expands to 50 MB
    decoder = decoder_for("gzip")
    assert decoder is not None
    assert len(decoder.decode(bomb, 1000)) == 1000 and decoder.pending


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_garbage_is_a_value_error(encoding: str):
    decoder = decoder_for(encoding)
    assert decoder is not None
    with pytest.raises(ValueError):
        decoder.decode(b"\xff" * 64 + b"certainly not compressed", 1000)


def test_identity_needs_no_decoder_and_an_unknown_encoding_is_refused():
    assert decoder_for("identity") is None and decoder_for("") is None
    with pytest.raises(UnknownEncoding):
        decoder_for("compress")
    assert ACCEPT_ENCODING == "gzip, deflate, br, zstd"
