"""Sphinx configuration of the ainu-engine documentation site (``make docs``).

Sphinx with the PyData theme, as scikit-image and napari use: the pages are the Markdown files
of ``docs/`` (MyST), the API reference is generated from the numpydoc docstrings of every
public module (the modules ``tests/test_docstrings.py`` checks), the command-line reference from
the typer application itself (each command's ``--help``, as a terminal shows it), and the
worked examples in ``docs/examples/`` are MyST notebooks executed at each build (myst-nb).
Warnings are errors (``make docs``: ``-W``).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
import ainu_engine  # noqa: E402
from ainu_engine.deprecation import MOVED_MODULES  # noqa: E402

project = "ainu-engine"
author = "ainu-engine developers"
copyright = "2024-2026, ainu-engine developers"  # noqa: A001 - Sphinx's name
release = ainu_engine.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # Markdown pages (MyST) and executed MyST notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_design",  # the cards of the landing page
]

# the repository's folders that are no pages of the site
exclude_patterns = [
    "_build",
    "api/generated/README.md",
    "results/*/runs/**",
    "**/.ipynb_checkpoints",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 4  # the pages link to each other's sections: [x](screening.md#channels)
suppress_warnings = ["myst.header"]  # README-style pages that start at a level-3 heading

# the worked examples run at every build; one that fails fails the build
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "pydata_sphinx_theme"
html_title = f"ainu-engine {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []

#: public modules that are not documented in the API reference (they document themselves
#: elsewhere): the CLI (the CLI reference), the napari plugin's hooks, deprecated aliases
API_SKIP = ("ainu_engine.cli", "ainu_engine.napari", "ainu_engine.__main__")
API_DEPRECATED = set(MOVED_MODULES)


def public_modules() -> list[str]:
    """Every public module of the engine, its kernels and (where torch is here) training."""
    roots = [ainu_engine, importlib.import_module("ainu_engine.kernels")]
    if importlib.util.find_spec("torch") is not None:
        roots.append(importlib.import_module("ainu_engine.training"))
    mods = set()
    for root in roots:
        mods.add(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=root.__name__ + "."):
            parts = info.name.split(".")[1:]
            if any(p.startswith("_") for p in parts) or info.name in API_DEPRECATED:
                continue
            if any(info.name == s or info.name.startswith(s + ".") for s in API_SKIP):
                continue
            mods.add(info.name)
    return sorted(mods)


def _directive(obj: object) -> str:
    if isinstance(obj, type):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def write_api_pages(app=None) -> None:
    """Write ``api/generated/<module>.md``: each public name once, under the first module (in
    sorted order) that exports it; a later module that re-exports it links there."""
    out = HERE / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    where: dict[int, str] = {}
    pages = []
    for name in public_modules():
        mod = importlib.import_module(name)
        summary = (mod.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines = [f"# `{name}`", "", f"```{{eval-rst}}\n.. module:: {name}\n   :no-index:\n```", ""]
        lines += [summary, ""] if summary else []
        for attr in getattr(mod, "__all__", []):
            if attr.startswith("__"):
                continue
            obj = getattr(mod, attr)
            first = where.setdefault(id(obj), f"{name}.{attr}")
            if first != f"{name}.{attr}":
                lines += [f"`{name}.{attr}`: the same object as {{py:obj}}`{first}`.", ""]
                continue
            kind = _directive(obj)
            options = {"autoclass": "   :members:\n", "autodata": "   :no-value:\n"}.get(kind, "")
            lines += [f"```{{eval-rst}}\n.. {kind}:: {name}.{attr}\n{options}```", ""]
        _write_if_changed(out / f"{name}.md", "\n".join(lines))
        pages.append(name)
    index = ["# API reference", "", "Every public module, each name under the module that "
             "exports it first.", "", "```{toctree}", ":maxdepth: 1", "", *pages, "```", ""]
    _write_if_changed(out / "index.md", "\n".join(index))


def _help(args: list[str]) -> str:
    """``ainu-engine ARGS --help`` at 80 columns, as the command prints it in a terminal."""
    import os

    from typer.testing import CliRunner

    from ainu_engine.cli._app import app

    os.environ["COLUMNS"] = "80"
    res = CliRunner().invoke(app, [*args, "--help"], prog_name="ainu-engine", terminal_width=80)
    if res.exit_code != 0:
        raise RuntimeError(f"ainu-engine {' '.join(args)} --help failed: {res.output}")
    return res.output.rstrip()


def write_cli_page() -> None:
    """``api/generated/cli.md``: every command's help, generated from the commands."""
    from ainu_engine.cli._app import COMMANDS, GROUPS

    lines = [
        "# Command-line reference", "",
        "Generated from the commands themselves when this site is built: the same text as "
        "`ainu-engine COMMAND --help`. Every command exits 0 on success, 1 when an input or "
        "output failed (one line per failure on stderr), 2 on a usage error and 130 when "
        "interrupted; `--debug` before the command name shows tracebacks.", "",
        "```text", _help([]), "```", "",
    ]
    for name in COMMANDS:
        lines += [f"## `ainu-engine {name}`", "", "```text", _help([name]), "```", ""]
    for group, commands in GROUPS.items():
        lines += [f"## `ainu-engine {group}`", "", "```text", _help([group]), "```", ""]
        for name in commands:
            lines += [f"### `ainu-engine {group} {name}`", "", "```text",
                      _help([group, name]), "```", ""]  # fmt: skip
    _write_if_changed(HERE / "api" / "generated" / "cli.md", "\n".join(lines))


def _write_if_changed(path: Path, text: str) -> None:
    # an unchanged page keeps its time stamp: Sphinx rebuilds only what changed
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


write_api_pages()
write_cli_page()
