"""How the library's messages name an option: as the Python API's keyword, or as the flag.

A message names an option as `name` (or `name=VALUE`, the option given that value). From
Python that reads ``name=`` (``name=VALUE``); ``fanfetch run`` sets ``VOICE`` to its flags,
so the same message reads ``--name`` (``--name VALUE``; ``--name`` alone for a switch
turned on). The voice is a context variable: the command line sets it once in its main
thread, the tasks of its loop inherit it, and a worker process or a Ray shard is handed the
one its run was started with. Only an option's name is said so: other text between
backquotes (a JMESPath literal, a server's words) stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["VOICE", "Voice", "as_keyword", "speak"]

Voice = Callable[[str], str | None]  # `name` or `name=VALUE` -> how it is said; None: no option


def as_keyword(named: str) -> str | None:
    """The Python API's way: ``name=``, and ``name='text'`` (numbers, True, False, None bare)."""
    from ._config import BY_NAME
    from ._job import JOB_FIELDS

    name, given, value = named.partition("=")
    if name not in BY_NAME and name not in JOB_FIELDS:
        return None
    if not given or _BARE.fullmatch(value):
        return named if given else f"{name}="
    return f"{name}={value!r}"


_BARE = re.compile(r"True|False|None|-?\d+(\.\d+)?")


VOICE: ContextVar[Voice] = ContextVar("fanfetch_voice", default=as_keyword)

_NAMED = re.compile(r"`(\w+(?:=[^`\s]*)?)`")


def speak(text: str, voice: Voice | None = None) -> str:
    """``text`` with each option it names said in ``voice`` (default: the current one)."""
    if "`" not in text:
        return text
    say = voice or VOICE.get()
    return _NAMED.sub(lambda m: say(m.group(1)) or m.group(0), text)
