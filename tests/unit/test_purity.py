"""The layers: the pure core never imports I/O, imports only point down, and nothing is circular.

Every module of the package is given its layer (the longest prefix in ``ALLOWED``); each of its
imports of the project must be its own layer or one the table allows. The table is the
Architecture section of the README and the ``__init__`` docstrings, in code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "stream_ensemble"
IO_LIBRARIES = ("confluent_kafka", "redis", "faust", "aiokafka", "prometheus_client")

_BASE = {"errors", "types"}
_CORE = {"core.data", "core.evaluation", "core.registry", "core.members", "core.combiners",
         "core.selection", "core.confidence", "core.strategies", "core.training", "core.experiments"}
#: layer -> the other layers it may import (its own is always allowed).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "types": set(),
    "addresses": {"errors"},
    "config": {"errors", "addresses"},
    "core": set(),
    "core.data": _BASE,
    "core.evaluation": _BASE,
    "core.registry": _BASE,
    "core.members": _BASE | {"core.registry"},  # a user's skops file is audited with the registry's trusted list
    "core.combiners": _BASE,
    "core.selection": _BASE,
    "core.confidence": _BASE | {"core.evaluation"},
    "core.strategies": _BASE | {"core.selection", "core.combiners", "core.confidence"},
    "core.training": _BASE | _CORE - {"core.experiments"},
    "core.experiments": _BASE,
    "ports": _BASE,
    "progress": set(),
    "testing": _BASE | {"ports"},
    "serving": _BASE | _CORE | {"ports", "config"},
    "adapters": _BASE | {"addresses", "config", "ports"},
    "worker": _BASE | {"config", "ports", "serving", "adapters"},
    "ab": _BASE | _CORE | {"config", "ports", "serving", "adapters"},
    "demo": _BASE | _CORE | {"config", "progress", "ports", "serving", "adapters", "worker", "ab"},
    "bench": _BASE | _CORE | {"config", "progress", "ports", "serving", "adapters", "worker", "demo", "testing", "ab"},
    "cli": _BASE | _CORE | {"config", "progress", "ports", "serving", "adapters", "worker", "demo", "bench", "testing", "ab"},
    "__main__": {"cli"},
}
#: Layers that must never import an I/O library.
PURE = {"errors", "types", "config", "ports", "serving"} | {k for k in ALLOWED if k.startswith("core")}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    """Longest prefix of ``module`` (relative to the package) that names a layer."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in ALLOWED:
            return candidate
    raise AssertionError(f"module {module!r} belongs to no layer: add it to ALLOWED (and the README)")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (function-level imports count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one.
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found = {m for m in subs if _is_module(m)}
            names.update(found or {node.module})
    return names


def _is_module(dotted: str) -> bool:
    if not dotted.startswith("stream_ensemble."):
        return False
    rel = Path(*dotted.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def project_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        graph[module_name(path)] = {
            m.removeprefix("stream_ensemble.") for m in imports(path) if m.startswith("stream_ensemble.")
        }
    return graph


def test_every_module_has_a_layer() -> None:
    graph = project_graph()
    assert len(graph) > 40
    for module in graph:
        if module:  # the package's own __init__
            layer_of(module)


def test_imports_point_down_only() -> None:
    breaches = []
    for module, targets in project_graph().items():
        if not module:
            continue
        own = layer_of(module)
        for target in targets:
            other = layer_of(target)
            if other != own and other not in ALLOWED[own]:
                breaches.append(f"{module} ({own}) imports {target} ({other})")
    assert breaches == []


def test_pure_layers_import_no_io_library() -> None:
    breaches = {}
    for path in ROOT.rglob("*.py"):
        module = module_name(path)
        if module and layer_of(module) in PURE:
            bad = sorted(m for m in imports(path) if m.split(".")[0] in IO_LIBRARIES)
            if bad:
                breaches[module] = bad
    assert breaches == {}


def test_no_import_cycles() -> None:
    graph = project_graph()
    # A package's __init__ is the module named by the package path; an import of a submodule
    # also runs the package __init__, so the edge to the package is implied.
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done or node not in graph:
            return
        stack.append(node)
        for target in sorted(graph[node]):
            visit(target)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
