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
import secrets
from collections.abc import AsyncIterable
from typing import BinaryIO

__all__ = ["SavedBody", "clean_partials", "clean_temps", "safe_name", "save_stream", "temp_prefix"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PLAIN = re.compile(r"[a-z0-9_][a-z0-9._-]{0,99}")  # lower case: the same on every file system
_NUMBER = re.compile(r"-?[0-9]+")


def safe_name(rid: object, page: int | None = None) -> str:
    """A file name for request id ``rid`` (and ``page`` of its chain, past the first: the
    name with ``~p`` and the number), the same for no other id.

    Integer ids and plain lower-case string ids (letters, digits, ``.``, ``_``, ``-``; not
    starting with a dot) are used as they are; a string that looks like a number (``"7"``
    beside ``7``), has capitals (``"A"`` beside ``"a"`` on a file system that ignores case),
    or any other character is cleaned and given ``~`` and a hash of the exact id, a
    character plain names never have. So ``"../../etc/passwd"`` stays inside and no two
    ids share a file.
    """
    if page is not None and page > 1:
        return f"{safe_name(rid)}~p{page}"  # a cleaned name ends in ~ and 16 hex digits
    if type(rid) is int:
        return str(rid)
    text = str(rid)
    if isinstance(rid, str) and _PLAIN.fullmatch(text) and not _NUMBER.fullmatch(text):
        return text
    kind = b"s:" if isinstance(rid, str) else type(rid).__name__.encode() + b":"
    digest = hashlib.blake2b(kind + text.encode(), digest_size=8).hexdigest()
    clean = _UNSAFE.sub("_", text)[:100].lstrip(".")
    return f"{clean or 'id'}~{digest}"


class SavedBody:
    __slots__ = ("path", "sha256", "size")

    def __init__(self, path: str, size: int, sha256: str) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256


def _create_new(directory: str, name: str) -> tuple[str, BinaryIO]:
    """A new temporary file beside ``name``, never through a link and never an existing
    file (``O_EXCL | O_NOFOLLOW``), under a name no other attempt uses."""
    partial = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(partial, flags, 0o644)
    return partial, os.fdopen(fd, "wb")


async def save_stream(
    chunks: AsyncIterable[bytes],
    directory: str,
    rid: object,
    *,
    limit: int | None,
    page: int | None = None,
) -> SavedBody:
    """Write ``chunks`` to ``directory/safe_name(rid, page)``; raise ``OverflowError`` past
    ``limit`` (None: no limit). The file is written under a temporary name and renamed into place
    (a rename replaces a link at the final name; it never writes through it)."""
    name = safe_name(rid, page)
    path = os.path.join(directory, name)
    digest = hashlib.sha256()
    size = 0
    partial, f = await asyncio.to_thread(_create_new, directory, name)
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


def temp_prefix(path: str) -> str:
    """The name every temporary file made beside ``path`` starts with (a file rewritten
    then renamed over it): the output's own, so that ``clean_temps`` finds its leftovers."""
    return f".{os.path.basename(path)}.fanfetch-"


def clean_temps(path: str) -> int:
    """Remove the temporary files a killed run left beside ``path``; how many. (One run
    writes an output at a time: whatever temporary file it had is nobody's now.)"""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = temp_prefix(path)
    return _remove_matching(directory, lambda name: name.startswith(prefix))


_PARTIAL = re.compile(r"\..+\.[0-9a-f]{12}\.part")  # _create_new's names


def clean_partials(directory: str) -> int:
    """Remove the ``.part`` files a killed run left in ``--save-dir``; how many."""
    return _remove_matching(directory, _PARTIAL.fullmatch)


def _remove_matching(directory: str, matches: object) -> int:
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if matches(name):  # type: ignore[operator]
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed
