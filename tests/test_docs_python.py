"""The Python examples in the README and docs/ are valid Python, every name they import from
``ainu_engine`` exists, and every keyword they pass to one of those names is one of its
parameters: the documented API cannot drift from the code unnoticed."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]


def _blocks():
    for doc in DOCS:
        for k, block in enumerate(
            re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
        ):
            yield pytest.param(block, id=f"{doc.relative_to(REPO)}#{k}")


def test_the_docs_have_python_examples():
    assert len(list(_blocks())) >= 8


@pytest.mark.parametrize("block", list(_blocks()))
def test_python_example_parses_and_its_imports_exist(block):
    if block.lstrip().startswith(">>>"):  # a session transcript: only its input lines are code
        block = "\n".join(ln[4:] for ln in block.splitlines() if ln.startswith((">>> ", "... ")))
    tree = ast.parse(block)
    names = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in ("ainu_engine",)
        ):
            try:
                mod = importlib.import_module(node.module)
            except ImportError as err:
                if err.name and err.name.split(".")[0] in (
                    "torch",
                    "captum",
                    "onnx",
                    "onnxruntime",
                ):
                    pytest.skip(f"{node.module} needs {err.name}, not installed here")
                raise
            missing = [a.name for a in node.names if not hasattr(mod, a.name)]
            assert not missing, f"from {node.module} import {missing}: no such name"
            names.update({a.asname or a.name: getattr(mod, a.name) for a in node.names})
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in ("ainu_engine",):
                    importlib.import_module(a.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))):
            continue
        fn = None
        if isinstance(node.func, ast.Name):
            fn = names.get(node.func.id)
        elif (
            isinstance(node.func.value, ast.Name) and node.func.value.id in names
        ):  # Class.method(...)
            fn = getattr(names[node.func.value.id], node.func.attr, None)
        if fn is None or not callable(fn):
            continue
        params = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        unknown = [k.arg for k in node.keywords if k.arg is not None and k.arg not in params]
        assert not unknown, (
            f"{ast.unparse(node.func)}(...): no parameter {unknown} (has {list(params)})"
        )
