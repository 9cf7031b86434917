"""The layout's dependency rules, checked on the source (every import statement, including the
lazy ones inside functions):

- no import circle among the project's modules (strongly connected components of the import
  graph, scipy.sparse.csgraph);
- ``training → engine → kernels``: nothing in kernels imports the engine or training, and nothing
  in the engine imports training except the CLI (the top layer that dispatches the training
  commands);
- no module imports an underscore module of another package: packages talk through the names
  their ``__init__`` exports;
- the engine reaches the training package only from the training commands of the CLI;
- ONNX Runtime sessions are built in one place (``ainu_engine.onnx_session``), and nothing in the
  tree loads a pickle through ``torch.load`` (every file the project trains is read by the
  checkpoint owner with ``weights_only=True``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "engine": "ainu_engine",
    "kernels": "ainu_engine.kernels",
    "training": "ainu_engine.training",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package __init__)."""
    mods = {}
    for folder, root in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            mods[".".join((root, *parts))] = (path, is_pkg)
    return mods


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported project module, line) for every import statement of module ``name``."""
    path, is_pkg = MODULES[name]
    package = name if is_pkg else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in MODULES and "." in t:  # `import ainu_engine.io._api` etc.
                t = t.rpartition(".")[0]
            if t in MODULES and t != name:
                found.append((t, node.lineno))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _where(name: str, line: int) -> str:
    return f"{MODULES[name][0].relative_to(REPO)}:{line}"


def test_the_graph_covers_all_three_folders():
    assert {m.split(".")[1] if m.count(".") else m for m in MODULES} >= {
        "ainu_engine",
        "kernels",
        "training",
    }
    assert sum(len(v) for v in GRAPH.values()) > 100


def test_no_import_circle():
    names = sorted(MODULES)
    index = {m: i for i, m in enumerate(names)}
    rows, cols = [], []
    for m, deps in GRAPH.items():
        for d, _ in deps:
            rows.append(index[m])
            cols.append(index[d])
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(adj, directed=True, connection="strong")
    circles = []
    for label in np.unique(labels):
        members = [names[i] for i in np.flatnonzero(labels == label)]
        if len(members) > 1:
            edges = [
                f"{m} -> {d} ({_where(m, line)})"
                for m in members
                for d, line in GRAPH[m]
                if d in members
            ]
            circles.append("\n  ".join(edges))
    assert not circles, "import circles:\n  " + "\n\n  ".join(circles)


def _layer(module: str) -> str:
    if module.startswith("ainu_engine.kernels"):
        return "kernels"
    if module.startswith("ainu_engine.training"):
        return "training"
    if module in ("ainu_engine.cli", "ainu_engine.__main__") or module.startswith(
        "ainu_engine.cli."
    ):
        return "cli"  # (not ainu_engine.client: that is the engine's HTTP client)
    return "engine"


ALLOWED = {
    "kernels": {"kernels"},
    "engine": {"engine", "kernels"},
    "cli": {"cli", "engine", "kernels", "training"},
    "training": {"training", "engine", "kernels"},
}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_dependencies_point_one_way(layer):
    bad = [
        f"{_where(m, line)}: {m} imports {d}"
        for m, deps in GRAPH.items()
        if _layer(m) == layer
        for d, line in deps
        if _layer(d) not in ALLOWED[layer]
    ]
    assert not bad, "\n".join(bad)


def _private_to(module: str) -> str | None:
    """The package an underscore module belongs to (its own folder's code and subpackages may
    import it), or None for a public module."""
    parts = module.split(".")
    for k, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:k])
    return None


def _visible(private_owner: str, importer: str) -> bool:
    if not (importer == private_owner or importer.startswith(private_owner + ".")):
        return False
    folder = MODULES[importer][0].relative_to(REPO).parts[0]
    return FOLDERS[folder] == private_owner or private_owner.startswith(FOLDERS[folder] + ".")


def test_no_underscore_module_of_another_package_is_imported():
    bad = []
    for m, deps in GRAPH.items():
        for d, line in deps:
            owner = _private_to(d)
            if owner is not None and not _visible(owner, m):
                bad.append(f"{_where(m, line)}: {m} imports {d}")
    assert not bad, "private modules reached from another package:\n" + "\n".join(bad)


def test_library_code_leaves_process_wide_settings_alone():
    """No matplotlib.use() or pyplot (a Figure and savefig instead), no global thread pools."""
    bad = []
    for path, _ in MODULES.values():
        text = path.read_text(encoding="utf-8")
        for needle in ("matplotlib.use(", "matplotlib.pyplot", "import pyplot"):
            if needle in text:
                bad.append(f"{path.relative_to(REPO)}: {needle}")
    assert not bad, "\n".join(bad)


#: The CLI modules that dispatch training commands: the only engine modules that may import
#: ``ainu_engine.training`` (``info`` describes checkpoints through the checkpoint owner).
TRAINING_COMMANDS = {
    "ainu_engine.cli.train",
    "ainu_engine.cli.export",
    "ainu_engine.cli.evaluate",
    "ainu_engine.cli.info",
    "ainu_engine.cli.nucleus.train",
    "ainu_engine.cli.widefield.train",
}


def test_the_engine_reaches_training_only_from_the_training_commands():
    bad = [
        f"{_where(m, line)}: {m} imports {d}"
        for m, deps in GRAPH.items()
        if _layer(m) in ("engine", "cli") and m not in TRAINING_COMMANDS
        for d, line in deps
        if _layer(d) == "training"
    ]
    assert not bad, "\n".join(bad)


def _tree_files():
    """Every Python file and shell script of the project (the installed folders, benchmarks,
    tests, examples and the results scripts)."""
    for folder in ("engine", "kernels", "training", "benchmarks", "tests", "examples", "docs"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sh") and path.is_file():
                yield path


def _calls(needle: str) -> list[str]:
    found = []
    for path in _tree_files():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    return found


def test_onnx_runtime_sessions_are_built_in_one_place():
    """ONNX Runtime's session constructor is called only in ``engine/onnx_session.py`` (tests: they
    build sessions with ``ainu_engine.onnx_session.ort_session`` too)."""
    needle = "InferenceSession" + "("
    found = [f for f in _calls(needle) if not f.startswith("engine/onnx_session.py:")]
    assert not found, "\n".join(found)


def test_nothing_loads_a_pickle_through_torch_load():
    needle = "weights_only" + "=False"
    found = _calls(needle)
    assert not found, "\n".join(found)


def test_the_client_is_engine_not_cli():
    assert _layer("ainu_engine.client") == "engine" and _layer("ainu_engine.cli.render") == "cli"
