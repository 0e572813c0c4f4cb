"""STYLE rule 1: the pure core never imports Kafka, Redis, faust or the I/O layers."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = ("confluent_kafka", "redis", "faust", "aiokafka", "stream_ensemble.adapters",
             "stream_ensemble.worker", "stream_ensemble.engine", "stream_ensemble.cli")
CORE = Path(__file__).resolve().parents[2] / "stream_ensemble" / "core"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io_layers() -> None:
    files = list(CORE.rglob("*.py"))
    assert len(files) > 5
    breaches = {
        str(f.relative_to(CORE)): sorted(m for m in imported_modules(f) if m.split(".")[0] in {x.split(".")[0] for x in FORBIDDEN[:4]} or m.startswith(FORBIDDEN[4:]))
        for f in files
    }
    assert {k: v for k, v in breaches.items() if v} == {}
