"""The layering, written down and checked: each module imports only from its own layer or
below (function-level imports count too; imports for type checkers only do not run, and do
not), and nothing imports in a circle.

Layers, bottom up. Scale-out (``--workers``, Ray) sits above everything the core is made of,
so the core never reaches it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "fanfetch"

LAYERS: list[set[str]] = [
    {"_version", "_types", "_tuning", "_loop", "_channel", "_decoding", "_reorder"},
    {"_exceptions", "_redact"},
    {"_config", "_models", "_resume", "_files", "_urls"},
    {"_records"},
    {
        "_formats._rows",
        "_formats._csv",
        "_formats._sqlite",
        "_formats._parquet",
        "_formats._duckdb",
        "_formats._journal",
        "_formats",
    },
    {
        "_events",
        "_limits",
        "_retry",
        "_transform",
        "_select",
        "_paginate",
        "_expect",
        "_oauth",
        "_cost",
        "_keys",
        "_summary",
        "_progress",
        "_dashboard",
        "_notebook",
    },
    {"_input", "_output", "_template"},
    {
        "_transports._base",
        "_transports._aiohttp",
        "_transports._lean",
        "_transports._http2",
        "_transports._mock",
        "_transports",
    },
    {"_http"},
    {"_attempt"},
    {"_scheduler"},
    {"_job", "_jobspec", "_pipeline"},
    {"_client", "_mockapi"},
    {"_scale._workers", "_scale._cluster", "_scale"},  # scale-out
    {"_sync", "_runner", "_export", "_report", "_metrics"},
    {"_cli", "_bench", "__main__", "__init__"},
]
LAYER = {module: n for n, layer in enumerate(LAYERS) for module in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        if name == "__init__":
            package = []
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        for block in ast.walk(tree):  # `if TYPE_CHECKING:` blocks never run
            if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING"):
                block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, node.module] if node.module else base)
                if target in LAYER:
                    found.add(target)
                for alias in node.names:  # from . import _x
                    sub = f"{target}.{alias.name}" if target else alias.name
                    if sub in LAYER:
                        found.add(sub)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fanfetch."):
                target = node.module.removeprefix("fanfetch.")  # type: ignore[union-attr]
                if target in LAYER:
                    found.add(target)
        graph[name] = found - {name}
    return graph


def test_every_module_has_a_layer():
    assert set(_imports()) == set(LAYER), set(_imports()) ^ set(LAYER)


def test_no_module_imports_one_above_it():
    wrong = [
        f"{module} (layer {LAYER[module]}) imports {target} (layer {LAYER[target]})"
        for module, targets in _imports().items()
        for target in targets
        if LAYER[target] > LAYER[module]
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_nothing_imports_in_a_circle():
    graph = _imports()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_core_never_imports_scale_out():
    scale_out = {m for m in LAYER if m.startswith("_scale")}
    core = {m for m, n in LAYER.items() if n < LAYER["_scale"]}
    reaching = [(m, t) for m, ts in _imports().items() if m in core for t in ts & scale_out]
    assert not reaching
