"""The example that ships with the package: a small model trained on SIMULATED nuclei and a
batch of simulated nuclei to screen with it, so that ``pip install ainu-engine`` is enough to
see the engine work end to end (``ainu-engine example DIR``).

The files live in the package (``ainu_engine/example_data/``); :func:`write_example` copies them
to a folder of the user's. The model is labelled as trained on simulated data in its metadata
and its file name: it shows the engine working and is not a model of real cells.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import InputError

__all__ = ["ExampleFiles", "example_files", "write_example"]

#: the bundled model's file name (its metadata says the same: trained on simulated nuclei)
MODEL_NAME = "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"


@dataclass(frozen=True)
class ExampleFiles:
    """Where the parts of the example are.

    Attributes
    ----------
    root : pathlib.Path
        The folder that holds the example.
    model : pathlib.Path
        The bundled ONNX model (hiPSC vs somatic, small CNN, trained on simulated nuclei).
    screen : pathlib.Path
        A batch to screen: three slides of simulated nuclei in Insight3, ThunderSTORM CSV and
        Parquet files, with a ``manifest.csv`` per slide and each nucleus' ground truth.
    data : pathlib.Path
        One nucleus in three formats (ThunderSTORM CSV, Insight3 .bin with its sidecar, Parquet).
    """

    root: Path
    model: Path
    screen: Path
    data: Path

    def commands(self) -> list[str]:
        """The commands that screen the example and explain two of its calls.

        Returns
        -------
        list of str
            Shell commands, in the order to run them.
        """
        out = self.root / "results"
        return [
            f"ainu-engine info {self.model}",
            f"ainu-engine screen {self.screen} --model {self.model} --out {out} --explain 2",
        ]


def _files(root: Path) -> ExampleFiles:
    return ExampleFiles(
        root=root,
        model=root / "models" / MODEL_NAME,
        screen=root / "screen",
        data=root / "data",
    )


def example_files() -> ExampleFiles:
    """The bundled example where it is installed (read it in place; do not write there).

    Returns
    -------
    ExampleFiles
        The paths inside the installed package.

    Raises
    ------
    InputError
        When the installation lacks the example's files (a package built without its data).

    Examples
    --------
    >>> from ainu_engine.example import example_files
    >>> example_files().model.name
    'hipsc_vs_somatic.small_cnn.SIMULATED.onnx'
    """
    root = Path(str(resources.files("ainu_engine") / "example_data"))
    files = _files(root)
    if not files.model.is_file() or not files.screen.is_dir():
        raise InputError(
            f"{root}: the bundled example is missing from this installation (the package was "
            "built without its data files); reinstall ainu-engine from a wheel or the repository"
        )
    return files


def write_example(dest: str | os.PathLike, *, force: bool = False) -> ExampleFiles:
    """Copy the bundled example (model, batch, example nucleus) into ``dest``.

    Parameters
    ----------
    dest : str or os.PathLike
        The folder to write; created if missing. It must not hold an earlier example unless
        ``force`` is true.
    force : bool, optional
        Replace the example's folders (``models/``, ``screen/``, ``data/``) in ``dest`` if they
        exist. Nothing else in ``dest`` is touched.

    Returns
    -------
    ExampleFiles
        The paths of the written example.

    Raises
    ------
    InputError
        When ``dest`` is a file, or already holds part of an example and ``force`` is false.

    Examples
    --------
    >>> import tempfile
    >>> from ainu_engine.example import write_example
    >>> ex = write_example(tempfile.mkdtemp())
    >>> sorted(p.name for p in ex.screen.iterdir())
    ['slide1', 'slide2', 'slide3']
    """
    src = example_files()
    root = Path(dest)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: is a file; the example needs a folder")
    out = _files(root)
    parts = [("models", src.model.parent), ("screen", src.screen), ("data", src.data)]
    there = [name for name, _ in parts if (root / name).exists()]
    if there and not force:
        raise InputError(
            f"{root}: already holds {', '.join(there)} (an earlier example?); "
            "pass force=True (--force) to replace them"
        )
    root.mkdir(parents=True, exist_ok=True)
    for name, folder in parts:
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        # copy to a temporary name, then rename: an interrupted copy leaves no half example
        tmp = root / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("__pycache__"))
        tmp.rename(target)
    return out
