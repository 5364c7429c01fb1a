"""Saving bodies to files (``--save-dir``): safe names, streamed writes off the loop.

A body is written chunk by chunk as it arrives, each write on a worker thread so the loop
never waits on the disk, and hashed on the way; the file appears under its final name only
once complete (written to a temporary name, then renamed), so a crash never leaves a
truncated file that looks finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterable

__all__ = ["SavedBody", "safe_name", "save_stream"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(rid: object) -> str:
    """A file name for request id ``rid`` that cannot leave the directory or hide.

    Ids made only of letters, digits, ``.``, ``_`` and ``-`` (and not starting with a dot) are
    used as they are; any other id is cleaned and given a short hash of the original, so
    ``"a/b"`` and ``"a_b"`` never share a file and ``"../../etc/passwd"`` stays inside.
    """
    text = str(rid)
    clean = _UNSAFE.sub("_", text)[:100].lstrip(".")
    if clean == text and clean:
        return clean
    digest = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
    return f"{clean or 'id'}-{digest}"


class SavedBody:
    __slots__ = ("path", "sha256", "size")

    def __init__(self, path: str, size: int, sha256: str) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256


async def save_stream(
    chunks: AsyncIterable[bytes], directory: str, rid: object, *, limit: int | None
) -> SavedBody:
    """Write ``chunks`` to ``directory/safe_name(rid)``; raise ``OverflowError`` past ``limit``
    (None: no limit)."""
    path = os.path.join(directory, safe_name(rid))
    partial = path + ".part"
    digest = hashlib.sha256()
    size = 0
    f = await asyncio.to_thread(open, partial, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            if limit is not None and size > limit:
                raise OverflowError(size)
            digest.update(chunk)
            await asyncio.to_thread(f.write, chunk)
        await asyncio.to_thread(f.close)
        await asyncio.to_thread(os.replace, partial, path)
    except BaseException:
        f.close()
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    return SavedBody(path, size, digest.hexdigest())
