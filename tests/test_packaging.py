"""Packaging contracts: light imports, extras that never pull both ONNX Runtime builds, CI and
README commands."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO

HEAVY = ("torch", "onnxruntime", "cupy", "tensorrt", "numba.cuda", "matplotlib", "sklearn")


def test_import_engine_is_light():
    code = (
        "import sys, ainu_engine, ainu_engine.io, ainu_engine.cli, ainu_engine.cli._app, "
        "ainu_engine.kernels\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imported at import time: {res.stdout.strip()}"


def _extras():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return meta["dependencies"], meta["optional-dependencies"]


def _closure(extra: str, extras: dict, seen=None) -> set[str]:
    """Distribution names an extra pulls, following self-references (ainu-engine[...])."""
    seen = seen if seen is not None else set()
    names = set()
    for spec in extras[extra]:
        req = Requirement(spec)
        if req.name == "ainu-engine":
            for sub in req.extras:
                if sub not in seen:
                    seen.add(sub)
                    names |= _closure(sub, extras, seen)
        else:
            names.add(req.name.lower())
    return names


def test_core_dependencies_have_no_torch_or_onnxruntime():
    core, _ = _extras()
    names = {Requirement(s).name.lower() for s in core}
    assert not names & {"torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"}


def test_no_extra_pulls_both_onnxruntime_builds():
    _, extras = _extras()
    for extra in extras:
        names = _closure(extra, extras)
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names, extra
    assert "onnxruntime" in _closure("cpu", extras)
    for cuda in ("cuda12", "cuda13"):
        assert "onnxruntime-gpu" in _closure(cuda, extras)
        assert "onnxruntime" not in _closure(cuda, extras)


def test_ci_installs_a_browser_and_a_display_then_lint_docs_and_make_test():
    script = (REPO / ".ci" / "run").read_text()
    commands = [
        ln.strip()
        for ln in script.splitlines()
        if ln.strip()
        and not ln.strip().startswith("#")
        and not ln.startswith(("set ", "cd ", "export "))
    ]
    assert commands == [
        "bash .ci/install-browser",
        "bash .ci/install-display",
        "make lint",
        "make typecheck",
        "make docs",
        "make test",
    ]
    assert "export AINU_REQUIRE_NAPARI=1" in script  # the napari tests run, not skip


def test_readme_quick_start_is_two_commands():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S).group(1)
    commands = [
        ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    assert commands == ["make demo", "make test"]


def test_constraints_pin_cpu_torch():
    lines = (REPO / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in lines


FOLDERS = {
    "engine": "ainu_engine",
    "kernels": "ainu_engine.kernels",
    "training": "ainu_engine.training",
}


def test_every_package_folder_is_installed_under_ainu_engine():
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {v: k for k, v in FOLDERS.items()}
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert set(tool["packages"]) == found


def test_no_top_level_engine_kernels_or_training_is_importable(tmp_path):
    # -I: no current folder and no PYTHONPATH on sys.path, only what is installed
    code = (
        "import importlib.util, ainu_engine, ainu_engine.kernels, ainu_engine.training\n"
        "print([m for m in ('engine', 'kernels', 'training') if importlib.util.find_spec(m)])"
    )
    res = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_importing_every_module_loads_no_old_top_level_name():
    code = (
        "import pkgutil, sys, importlib\n"
        "import ainu_engine, ainu_engine.kernels, ainu_engine.training\n"
        "for root in (ainu_engine, ainu_engine.kernels, ainu_engine.training):\n"
        "    for i in pkgutil.walk_packages(root.__path__, root.__name__ + '.'):\n"
        "        if not i.name.endswith('__main__'):\n"
        "            importlib.import_module(i.name)\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('engine', 'kernels', 'training')])"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_the_slow_marker_splits_off_a_quick_inner_loop():
    """`pytest -m "not slow"` is the inner loop; `make test` (no -m) runs everything."""
    makefile = (REPO / "Makefile").read_text()
    test_rule = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "pytest" in test_rule and "-m" not in test_rule.replace("-m pytest", "")
    marked = [
        p for p in (REPO / "tests").rglob("test_*.py") if "@pytest.mark.slow" in p.read_text()
    ]
    assert len(marked) >= 4
