"""Records: the JSON-line shape of a result, and how bodies are decoded into it."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from fanfetch import Request, Result
from fanfetch._core._exceptions import HTTPStatusError, RequestError, RequestTimeout
from fanfetch._core._models import decode_body


@pytest.mark.parametrize(
    ("content", "ctype", "charset", "expected"),
    [
        (b'{"a": 1}', "application/json", None, ({"a": 1}, None)),
        (b'{"a": 1}', "application/problem+json", None, ({"a": 1}, None)),
        (b"not json", "application/json", None, ("not json", None)),
        ("café".encode("latin-1"), "text/plain", "iso-8859-1", ("café", None)),
        (b"plain", "", None, ("plain", None)),
        (b"\x00\xff", "application/octet-stream", None, ("AP8=", "base64")),
        (b"\xff\xfe", "text/plain", "utf-8", ("//4=", "base64")),
        (b"", "application/json", None, (None, None)),
    ],
)
def test_bodies_are_json_when_they_parse_else_text_else_base64(content, ctype, charset, expected):
    assert decode_body(content, ctype, charset) == expected


def test_a_record_has_its_fields_in_order_and_error_as_type_and_message():
    request = Request("http://127.0.0.1/", id="a", meta={"m": 1})
    ok = Result(request, status=200, content=b"[1]", content_type="application/json", attempts=2)
    assert ok.to_dict() == {
        "id": "a", "url": "http://127.0.0.1/", "method": "GET", "ok": True, "status": 200,
        "attempts": 2, "elapsed_ms": 0.0, "started_at": None, "body": [1], "error": None,
        "meta": {"m": 1},
    }  # fmt: skip
    failed = Result(request, error=RequestTimeout("slow"), attempts=4)
    record = failed.to_dict(include_headers=True)
    assert record["ok"] is False and record["headers"] is None
    assert record["error"] == {"type": "timeout", "message": "slow"}


def test_result_helpers_give_text_json_and_raise():
    result = Result(Request("http://127.0.0.1/"), status=200, content=b'{"x": 2}')
    assert result.ok and result.json() == {"x": 2} and result.text == '{"x": 2}'
    assert result.raise_for_error() is result
    failed = Result(Request("http://127.0.0.1/"), error=RequestTimeout("slow"))
    with pytest.raises(RequestTimeout):
        failed.raise_for_error()


U = "http://127.0.0.1"


@pytest.mark.parametrize(
    "result",
    [
        Result(Request(f"{U}/1", id=1, meta={"k": 1}), status=200, content=b'{"a": [1]}',
               content_type="application/json", attempts=2, elapsed_ms=12.5),
        Result(Request(f"{U}/2", id="two"), status=200, content=b"plain",
               content_type="text/plain"),
        Result(Request(f"{U}/3", id=3), status=200, content=b"\x00\xff",
               content_type="image/png"),
        Result(Request(f"{U}/4", id=4), status=404, content=b"", content_type="text/plain",
               error=HTTPStatusError("HTTP 404 Not Found")),
        Result(Request(f"{U}/5", method="POST", id=5), error=RequestTimeout("no answer in 5 s"),
               attempts=4),
    ],
)  # fmt: skip
def test_a_result_read_back_from_its_record_gives_the_same_record(result: Result):
    record = orjson.loads(orjson.dumps(result.to_dict(include_headers=True)))
    again = Result.from_record(record)
    assert again.to_dict(include_headers=True) == record
    assert again.ok is result.ok and again.id == result.id
    assert type(again.error) is type(result.error)
    if result.content_type == "application/json":
        assert again.json() == result.json()  # the same value (its bytes re-encoded)
    elif result.content:
        assert again.content == result.content  # text and binary bodies byte for byte


def test_an_error_type_this_version_does_not_know_keeps_its_name():
    record = {"id": 1, "url": "http://127.0.0.1/", "error": {"type": "quota", "message": "spent"}}
    assert Result.from_record(record).to_dict()["error"] == {"type": "quota", "message": "spent"}


def test_every_error_class_lives_in_the_tree_is_drawn_exported_and_has_its_own_type():
    import fanfetch
    from fanfetch._core import _exceptions

    def below(cls: type[Exception]) -> list[type[Exception]]:
        found = [cls]
        for direct in cls.__subclasses__():
            found += below(direct)
        return found

    for module in ("_engine._keys", "_engine._oauth", "_engine._paginate", "_scale._workers"):
        __import__(f"fanfetch.{module}")  # every module that raises one, imported
    classes = [
        cls for cls in below(fanfetch.FanfetchError) if cls.__module__.startswith("fanfetch")
    ]
    drawing = _exceptions.__doc__ or ""
    for cls in classes:
        assert cls.__module__ == "fanfetch._core._exceptions", cls
        assert re.search(rf"[ ─]{cls.__name__}\b", drawing), cls
        assert getattr(fanfetch, cls.__name__) is cls, cls
    types = [cls.type for cls in classes if issubclass(cls, fanfetch.RequestError)]
    assert len(types) == len(set(types)), sorted(types)
    for cls in classes:
        if issubclass(cls, fanfetch.RequestError) and cls is not fanfetch.RequestError:
            record = {"id": 1, "url": "http://127.0.0.1/", "error": {"type": cls.type}}
            assert type(Result.from_record(record).error) is cls  # read back as itself


def test_attempt_history_is_typed_and_comes_back_from_its_record():
    from fanfetch._core._models import Attempt

    result = Result(Request("http://127.0.0.1/1", id=1), status=200, attempts=2)
    result.history = (Attempt(1, 503, None, 12.5, 250.0), Attempt(2, 200, None, 3.0, None))
    record = result.to_dict()
    assert record["history"][0] == {
        "attempt": 1, "status": 503, "error": None, "ms": 12.5, "wait_ms": 250.0
    }  # fmt: skip
    assert Result.from_record(record).history == result.history


def test_no_module_assigns_to_a_result_once_it_is_made():
    """Results are values: fields are given to ``Result(...)`` (or ``replace``), never set."""
    import ast
    import inspect
    from pathlib import Path

    import fanfetch

    fields = set(inspect.signature(Result.__init__).parameters) - {"self"}
    package = Path(fanfetch.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            targets += [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in fields
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")
                    and "result" in ast.unparse(target.value).lower()
                ):
                    found.append(f"{path.name}: {ast.unparse(target)}")
    assert found == []


def test_replace_makes_a_changed_copy_and_leaves_the_original():
    result = Result(Request("http://127.0.0.1/x", id=1), status=200, content=b'{"a": 1}',
                    content_type="application/json")  # fmt: skip
    assert result.body == {"a": 1}
    copy = result.replace(transformed=2)
    assert copy.transformed == 2 and copy.extra == {"transformed": 2} and result.extra is None
    assert copy.body == {"a": 1} and copy.status == 200 and copy.request is result.request


def test_a_copied_request_has_every_field_of_the_original():
    request = Request("http://127.0.0.1/x", method="POST", id="a", headers={"h": "1"},
                      params={"p": 1}, json={"j": 1}, timeout=3.0, meta={"m": 1}, cost=2.0,
                      line=7, seq=6)  # fmt: skip
    clone = request.copy()
    assert clone is not request and clone == request
    assert all(getattr(clone, n) is getattr(request, n) for n in Request.__slots__)


def _results() -> Any:
    """Results of every shape a run makes: each optional field there or not."""
    from hypothesis import strategies as st

    from fanfetch._core._files import SavedBody
    from fanfetch._core._models import UNSET, Attempt, status_error

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                     max_size=3),
        max_leaves=8,
    )  # fmt: skip
    bodies = st.one_of(
        st.just((None, "")),
        json_values.map(lambda v: (orjson.dumps(v), "application/json")),
        st.text(max_size=30).map(lambda t: (t.encode(), "text/plain")),
        st.binary(min_size=1, max_size=30).map(lambda b: (b"\xff" + b, "image/png")),
    )
    attempts = st.builds(Attempt, st.integers(1, 5), st.none() | st.integers(200, 599),
                         st.none() | st.sampled_from(["timeout", "connection"]),
                         st.floats(0, 1e4).map(lambda f: round(f, 3)),
                         st.none() | st.floats(0, 1e4).map(lambda f: round(f, 3)))  # fmt: skip

    @st.composite
    def result(draw: Any) -> Result:
        status = draw(st.none() | st.sampled_from([200, 201, 304, 404, 429, 503]))
        content, content_type = draw(bodies)
        error: RequestError | None = None
        if status is not None and status >= 300:
            error = status_error(status, None)
        elif status is None:
            error = RequestTimeout(draw(st.text(max_size=10)))
        saved = draw(st.none() | st.builds(SavedBody, st.just("/tmp/x"), st.integers(0, 99),
                                           st.just("ab" * 32)))  # fmt: skip
        page = draw(st.none() | st.integers(1, 99))
        request = Request("http://127.0.0.1/r", id=draw(st.integers(1, 99) | st.text(max_size=5)),
                          meta=draw(json_values))  # fmt: skip
        redirects = draw(st.integers(0, 3))
        return Result(
            request, status=status, content=content, content_type=content_type, error=error,
            attempts=draw(st.integers(0, 5)), elapsed_ms=round(draw(st.floats(0, 1e6)), 3),
            redirects=redirects, final_url="http://127.0.0.1/f" if redirects else None,
            history=draw(st.none() | st.lists(attempts, max_size=3).map(tuple)),
            started_at=draw(st.none() | st.integers(0, 2**40).map(lambda ms: ms / 1000.0)),
            saved=saved, key_index=draw(st.none() | st.integers(0, 9)), page=page,
            next=draw(st.none() | st.text(max_size=10)) if page is not None else None,
            transformed=draw(st.just(UNSET) | json_values),
        )  # fmt: skip

    return result()


def test_every_record_reads_back_as_the_same_result_and_writes_the_same_record():
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(_results())
    def round_trip(result: Result) -> None:
        record = orjson.loads(orjson.dumps(result.to_dict(for_writing=True)))
        again = Result.from_record(record)
        assert again.to_dict() == record
        assert (again.key_index, again.page, again.next) == (
            result.key_index, result.page, result.next,
        )  # fmt: skip
        assert again.extra == result.extra

    round_trip()
