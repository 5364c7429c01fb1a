"""The program: ``fanfetch`` and its commands. It may import anything; nothing imports it."""

from ._main import main

__all__ = ["main"]
