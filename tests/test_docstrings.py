"""Every name in a public ``__all__`` has a numpydoc docstring (parsed by numpydoc's own
``docscrape``): a summary, every parameter under Parameters (or, for a class, Attributes), a
Returns section where the function returns something; the headline API also has an Examples
section. A docstring numpydoc cannot parse is a problem too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import pytest

numpydoc = pytest.importorskip("numpydoc", reason="numpydoc (the dev extra) is not installed")
from numpydoc.docscrape import ClassDoc, FunctionDoc  # noqa: E402

import ainu_engine  # noqa: E402
import ainu_engine.kernels  # noqa: E402
from ainu_engine.deprecation import MOVED_MODULES  # noqa: E402

#: the CLI (typer commands document themselves in --help) and the napari plugin's hooks
SKIP = ("ainu_engine.cli", "ainu_engine.napari", "ainu_engine.__main__")
#: deprecated aliases of moved modules (CHANGELOG.md): they re-export documented names
DEPRECATED = set(MOVED_MODULES)
#: the headline API (DESIGN.md's contract): each has a runnable Examples section too
HEADLINE = {
    "ainu_engine.Classifier",
    "ainu_engine.Prediction",
    "ainu_engine.io.read",
    "ainu_engine.io.write",
    "ainu_engine.render.RenderSpec",
    "ainu_engine.render.render",
    "ainu_engine.render.render_files",
    "ainu_engine.render.RunningRender",
    "ainu_engine.explain.occlusion",
    "ainu_engine.live.LiveNucleus",
    "ainu_engine.client.Client",
    "ainu_engine.screen.screen",
    "ainu_engine.simulate.simulate_dataset",
    "ainu_engine.simulate.seeded_rng",
    "ainu_engine.nucleus_prediction.Generator",
    "ainu_engine.nucleus_prediction.tiled",
    "ainu_engine.optional.require",
    "ainu_engine.onnx_session.ort_session",
}


#: the training package's names are checked where its extra (torch) is installed
TORCH = importlib.util.find_spec("torch") is not None


def _public_modules() -> list[str]:
    roots = [ainu_engine, ainu_engine.kernels]
    if TORCH:
        roots.append(importlib.import_module("ainu_engine.training"))
    mods = set()
    for root in roots:
        mods.add(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=root.__name__ + "."):
            if any(p.startswith("_") for p in info.name.split(".")[1:]):
                continue
            if info.name in DEPRECATED or any(
                info.name == s or info.name.startswith(s + ".") for s in SKIP
            ):
                continue
            mods.add(info.name)
    return sorted(mods)


def _public_names() -> dict[str, object]:
    """Public name -> object, each object once (under the first module that exports it)."""
    seen: dict[tuple, tuple[str, object]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in _public_modules():
            mod = importlib.import_module(m)
            for n in getattr(mod, "__all__", []):
                obj = getattr(mod, n, None)
                if inspect.isfunction(obj) or inspect.isclass(obj):
                    seen.setdefault((obj.__module__, obj.__qualname__), (f"{m}.{n}", obj))
    return dict(sorted(seen.values()))


def _listed(section) -> set[str]:
    return {nm.strip() for p in section for nm in p.name.replace("*", "").split(",")}


def problems(name: str, obj) -> list[str]:
    """What the docstring of ``obj`` lacks (empty: it passes)."""
    doc = inspect.getdoc(obj)
    if not doc or not doc.strip():
        return ["no docstring"]
    try:
        return _problems(name, obj, doc)
    except ValueError as err:  # numpydoc cannot parse it (a section twice, ...)
        return [f"malformed numpydoc: {str(err).splitlines()[0]}"]


def _problems(name: str, obj, doc: str) -> list[str]:
    out = []
    if inspect.isclass(obj):
        d = ClassDoc(obj, doc=doc, config={"show_class_members": False})
        own_init = "__init__" in vars(obj)  # else the parent documents its parameters
        try:
            params = list(inspect.signature(obj).parameters) if own_init else []
        except (TypeError, ValueError):
            params = []
        have = _listed(d["Parameters"]) | _listed(d["Attributes"])
    else:
        d = FunctionDoc(obj, doc=doc)
        sig = inspect.signature(obj)
        params = [p for p in sig.parameters if p not in ("self", "cls")]
        have = _listed(d["Parameters"]) | _listed(d["Other Parameters"])
        if sig.return_annotation not in ("None", None) and not (d["Returns"] or d["Yields"]):
            out.append("no Returns section")
    missing = [p for p in params if p not in have]
    if missing:
        out.append(f"parameters not documented: {', '.join(missing)}")
    if name in HEADLINE and not d["Examples"]:
        out.append("no Examples section (headline API)")
    return out


NAMES = _public_names()


def test_the_public_api_is_found():
    assert len(NAMES) > 200 and "ainu_engine.screen.screen" in NAMES
    assert HEADLINE <= set(NAMES), sorted(HEADLINE - set(NAMES))


def test_every_public_name_has_a_numpydoc_docstring():
    failing = {n: problems(n, o) for n, o in NAMES.items()}
    failing = sorted(f"{n}: {'; '.join(p)}" for n, p in failing.items() if p)
    assert not failing, "document these (numpydoc):\n" + "\n".join(failing)


def test_the_checker_finds_what_is_missing():
    def documented(a: int, *, b: float = 1.0) -> int:
        """Add.

        Parameters
        ----------
        a : int
        b : float

        Returns
        -------
        int
        """
        return a

    def half(a: int, b: int) -> int:
        """Add.

        Parameters
        ----------
        a : int
        """
        return a

    assert problems("x.documented", documented) == []
    assert problems("x.half", half) == [
        "no Returns section",
        "parameters not documented: b",
    ]


def test_a_malformed_docstring_is_a_problem_not_a_crash():
    def twice(a: int) -> None:
        """Two Parameters sections.

        Parameters
        ----------
        a : int

        Parameters
        ----------
        a : int
        """

    (problem,) = problems("x.twice", twice)
    assert problem.startswith("malformed numpydoc: The section Parameters appears twice")
