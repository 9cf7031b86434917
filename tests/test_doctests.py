"""The docstring examples of every ``ainu_engine`` module run and print what they say.

They are collected here, by module name, rather than by pytest's ``--doctest-modules``: that
imports engine/*.py under the folder's name (``engine``), not the installed ``ainu_engine``.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import ainu_engine
import ainu_engine.kernels
import ainu_engine.training

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# modules whose examples need the training extra (torch)
NEEDS_TORCH = ("ainu_engine.training",)


def _modules_with_examples() -> list[str]:
    found = []
    roots = [ainu_engine, ainu_engine.kernels, ainu_engine.training]  # three folders, one package
    infos = [i for r in roots for i in pkgutil.walk_packages(r.__path__, prefix=r.__name__ + ".")]
    for info in infos:
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            if ">>> " in f.read():
                found.append(info.name)
    return sorted(found)


MODULES = _modules_with_examples()


def test_examples_are_found_in_all_three_folders():
    assert any(m.startswith("ainu_engine.training.") for m in MODULES)
    assert any(m.startswith("ainu_engine.render.") for m in MODULES)
    assert len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name, monkeypatch):
    from tests.conftest import REPO

    if name.startswith(NEEDS_TORCH):
        pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    monkeypatch.chdir(REPO)  # examples read examples/data/... relative to the checkout
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>> ' but no example was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples failed in {name} (output above)"
    )
