"""Requests made from rows: ``--url 'https://api/users/{user_id}'`` filled by each input row.

Rows are JSON objects (one a line) or CSV lines under a header. Each ``{field}`` in the
template is filled with that row's value, URL-encoded. With a method that carries a body
(POST, PUT, PATCH) the whole row is also sent as the JSON body: the shape of a bulk script
that posts many bodies to one endpoint.
"""

from __future__ import annotations

import csv
import re
import string
from typing import Any
from urllib.parse import quote

import orjson

from .._core._exceptions import ConfigError
from .._core._models import Request
from .._core._resume import IdSet
from .._core._types import Item
from ._input import METHODS, Duplicates, LineParser, checked, invalid_item

__all__ = ["ItemTemplate", "RowParser", "UrlTemplate"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UrlTemplate:
    """A URL with ``{field}`` slots, and the method the requests made from it use."""

    __slots__ = ("fields", "method", "path_fields", "template")

    def __init__(self, template: str, *, method: str = "GET") -> None:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError("url", template, f"the template is malformed: {exc}") from exc
        self.fields = [name for _, name, _, _ in parsed if name is not None]
        path = template.partition("?")[0]
        self.path_fields = [name for name in self.fields if f"{{{name}}}" in path]
        if any(not name or not name.isidentifier() for name in self.fields):
            raise ConfigError("url", template, "name each slot, e.g. {user_id}; no {} or {0}")
        method = method.upper()
        if method not in METHODS:
            raise ConfigError("method", method, "use one of " + ", ".join(sorted(METHODS)))
        self.template = template
        self.method = method

    def build(self, row: dict[str, Any], *, seq: int, line: int) -> Item:
        missing = [name for name in self.fields if name not in row]
        if missing:
            return invalid_item(line, seq, f"the row has no {', '.join(missing)} for the URL")
        for name in self.path_fields:
            if str(row[name]) in (".", ".."):  # however it is quoted, a URL parser resolves it
                return invalid_item(
                    line, seq, f"{{{name}}} is {row[name]!r}, which would climb the URL's path"
                )
        values = {name: quote(str(row[name]), safe="") for name in self.fields}
        rid = row.get("id")
        item = checked(
            Request(
                self.template.format_map(values),
                method=self.method,
                id=rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None,
                json=row if self.method in _BODY_METHODS else None,
                line=line,
            ),
            seq=seq,
            line=line,
        )
        return item

    def __repr__(self) -> str:
        return f"UrlTemplate({self.method} {self.template!r})"


def csv_values(text: str) -> list[str]:
    """The values of one CSV row, a field of any size the line limit lets in (the csv
    module's own limit, 128 KiB and process-wide, is lifted for the row and put back)."""
    before = csv.field_size_limit(2**31 - 1)
    try:
        return next(csv.reader([text]), [])
    finally:
        csv.field_size_limit(before)


class RowParser(LineParser):
    """Makes requests of rows: JSON objects, or CSV lines under their header line."""

    __slots__ = ("_csv", "_header", "_template")

    def __init__(
        self,
        template: UrlTemplate,
        *,
        csv_rows: bool = False,
        header: list[str] | None = None,
        start_line: int = 0,
        done: IdSet | None = None,
        duplicates: Duplicates | None = None,
    ) -> None:
        """``header`` and ``start_line`` are for a part of the input (a cluster shard): the
        CSV header the whole file starts with, and how many lines come before the part."""
        super().__init__(done=done, duplicates=duplicates, start_line=start_line)
        self._template = template
        self._csv = csv_rows
        self._header = header

    def parse(self, raw: bytes, line: int, seq: int) -> Item | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return invalid_item(line, seq, "the line is not UTF-8 text")
        if self._csv:
            try:
                values = csv_values(text)
            except csv.Error as exc:
                return invalid_item(line, seq, f"the CSV row cannot be read: {exc}")
            if self._header is None:
                self._header = [v.strip() for v in values]
                return None  # the header makes no request
            if len(values) != len(self._header):
                return invalid_item(
                    line, seq, f"{len(values)} values for {len(self._header)} columns"
                )
            return self._template.build(
                dict(zip(self._header, values, strict=True)), seq=seq, line=line
            )
        try:
            row = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return invalid_item(line, seq, f"malformed JSON: {exc}")
        if not isinstance(row, dict):
            return invalid_item(line, seq, "with a URL template each line is a JSON object")
        return self._template.build(row, seq=seq, line=line)


def csv_header(path: str) -> tuple[list[str], int, int]:
    """A CSV file's header: its column names, its line number and the byte offset after it."""
    with open(path, "rb") as f:
        line = 0
        for raw in f:
            line += 1
            if raw.strip():
                text = raw.decode("utf-8", errors="replace")
                names = [v.strip() for v in csv_values(text)]
                return names, line, f.tell()
    return [], line, 0


_SLOT = re.compile(r"\{([^{}]*)\}")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")


class ItemTemplate:
    """A job step's URL: ``{name}`` and ``{owner.login}`` slots filled from an item (a
    row, or an element of a parent's answer), each value encoded as one path segment or
    query value."""

    __slots__ = ("authority_literal", "names", "template")

    def __init__(self, template: str, *, step: str) -> None:
        self.template = template
        self.names = [match.group(1) for match in _SLOT.finditer(template)]
        bad = [name for name in self.names if not _DOTTED.match(name)]
        if bad or "{" in _SLOT.sub("", template) or "}" in _SLOT.sub("", template):
            raise ConfigError("url", template, f"step {step!r}: name each slot, e.g. {{id}} or "
                              "{owner.login}")  # fmt: skip
        scheme, sep, rest = template.partition("://")
        authority = rest.split("/", 1)[0].split("?", 1)[0] if sep else ""
        # whether the origin is the user's own, not one the item names (credentials go
        # only where the user sent them)
        self.authority_literal = bool(sep) and "{" not in scheme + authority

    def fill(self, item: Any) -> tuple[str | None, list[str]]:
        """The URL, or None and the names ``item`` lacks (or holds no plain value for)."""
        values: dict[str, str] = {}
        missing: list[str] = []
        for name in self.names:
            value = _lookup(item, name)
            if value is None or isinstance(value, dict | list):
                missing.append(name)
            elif isinstance(value, bool):
                values[name] = "true" if value else "false"
            elif str(value) in (".", ".."):
                missing.append(name)  # it would climb the URL's path
            else:
                values[name] = quote(str(value), safe="")
        if missing:
            return None, missing
        return _SLOT.sub(lambda m: values[m.group(1)], self.template), []

    def __repr__(self) -> str:
        return f"ItemTemplate({self.template!r})"


def _lookup(item: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(item, dict):
            return None
        item = item.get(part)
    return item
