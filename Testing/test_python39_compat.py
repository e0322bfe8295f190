"""Slicer 5.8 runs Python 3.9: the engine and both modules must parse and import there.

CI also runs the torch-free tests under Python 3.9 and 3.12 where those interpreters exist; this
static check covers the files that import torch (which those lanes cannot import): 3.10+ syntax,
PEP 604 unions evaluated at run time, and keyword arguments that 3.9 lacks.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TORCH_FREE = True
ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("dcaseg", "DCASegmentation", "DCATraining", "benchmarks")
                 for p in (ROOT / folder).rglob("*.py"))
NEW_KEYWORDS = {"zip": "strict", "dataclass": "slots", "field": "kw_only"}
NEW_TYPING = {"TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "Self", "Never", "LiteralString",
              "TypeVarTuple", "Unpack", "NotRequired", "Required", "override"}


def runtime_union(node: ast.AST) -> bool:
    """``A | B`` where an operand looks like a type (a class name, None, or a subscripted generic)."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)):
        return False

    def type_like(operand: ast.AST) -> bool:
        if isinstance(operand, ast.Constant):
            return operand.value is None
        if isinstance(operand, ast.Subscript):
            return True
        name = operand.id if isinstance(operand, ast.Name) else getattr(operand, "attr", "")
        return bool(name) and name[0].isupper() and not name.isupper()
    return type_like(node.left) or type_like(node.right) or runtime_union(node.left) or runtime_union(node.right)


def annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation (not evaluated under ``from __future__ import annotations``)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.AnnAssign, ast.arg)):
            annotations.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(n) for n in ast.walk(annotation))
    return inside


def problems(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, feature_version=(3, 9))
    except SyntaxError as error:
        return [f"line {error.lineno}: syntax newer than Python 3.9 ({error.msg})"]
    found = []
    in_annotation = annotation_nodes(tree)
    future = "from __future__ import annotations" in source
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if runtime_union(node) and (id(node) not in in_annotation or not future):
            found.append(f"line {line}: X | Y evaluated at run time (use typing.Union or Optional)")
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in NEW_KEYWORDS and any(k.arg == NEW_KEYWORDS[name] for k in node.keywords):
                found.append(f"line {line}: {name}({NEW_KEYWORDS[name]}=...) needs Python 3.10")
        if isinstance(node, ast.ImportFrom) and node.module in ("typing", "dataclasses"):
            newer = sorted(a.name for a in node.names if a.name in NEW_TYPING)
            if newer:
                found.append(f"line {line}: typing names newer than 3.9: {newer}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_source_runs_on_python_39(path):
    assert problems(path) == []


def test_the_check_finds_what_3_9_cannot_run(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\nfrom typing import TypeAlias\n"
                   "Solid = Ellipsoid | Tube\nx: int | None = None\npairs = zip(a, b, strict=True)\n"
                   "match x:\n    case 1:\n        pass\n")
    assert "syntax newer than Python 3.9" in problems(bad)[0]   # the match statement (3.9 names another line)
    bad.write_text(bad.read_text().split("match")[0])
    found = problems(bad)
    assert any("line 3: X | Y" in p for p in found)
    assert not any("line 4" in p for p in found)          # an annotation under the future import is fine
    assert any("zip(strict" in p for p in found)
    assert any("TypeAlias" in p for p in found)
