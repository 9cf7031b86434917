"""The package as a user gets it: ``python -m build`` makes an sdist and a wheel (the wheel built
from the sdist, so both are complete), the wheel installs with the ``cpu`` extra into a fresh
virtual environment outside the checkout, and there ``ainu-engine --version``, ``doctor`` and a
screen of the bundled example with the bundled model work, writing the version into the results.

Slow (about two minutes: the build, and a venv of the runtime dependencies from pip's cache);
CI runs it as part of ``make test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
MODEL = "models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"


def _run(cmd, cwd, timeout=900, env=None):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="build (the dev extra) makes the wheel")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=REPO)
    return out


def test_sdist_and_wheel_hold_the_package_and_its_data(dist):
    (wheel,) = dist.glob(f"ainu_engine-{VERSION}-py3-none-any.whl")
    (sdist,) = dist.glob(f"ainu_engine-{VERSION}.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for must in (
        "ainu_engine/__init__.py",
        "ainu_engine/kernels/__init__.py",
        "ainu_engine/training/__init__.py",
        "ainu_engine/napari/napari.yaml",
        "ainu_engine/example_data/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx",
        "ainu_engine/example_data/screen/slide1/manifest.csv",
        "ainu_engine/example_data/data/nucleus_insight3.bin.json",
    ):
        assert must in names, must
    # nothing of the repository that is not the package: no tests, benchmarks or top-level names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ainu_engine", f"ainu_engine-{VERSION}.dist-info"}, tops
    meta = zipfile.ZipFile(wheel).read(f"ainu_engine-{VERSION}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in meta and "Provides-Extra: cpu" in meta
    members = tarfile.open(sdist).getnames()
    assert f"ainu_engine-{VERSION}/pyproject.toml" in members
    assert f"ainu_engine-{VERSION}/engine/example_data/screen/slide2/manifest.csv" in members


def test_the_wheel_installed_outside_the_checkout_screens_the_bundled_example(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py, exe = venv / "bin" / "python", venv / "bin" / "ainu-engine"
    _run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q",
          "-c", str(REPO / "constraints.txt"), f"{wheel}[cpu]"], cwd=tmp_path)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(py), "-c", "import ainu_engine; print(ainu_engine.__file__)"], work, env=env)
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's, not the checkout's
    assert _run([str(exe), "--version"], work, env=env).strip() == f"ainu-engine {VERSION}"
    doctor = json.loads(_run([str(exe), "doctor", "--json"], work, env=env))
    assert doctor["ainu_engine"] == VERSION
    assert any(b["available"] for b in doctor["backends"] if "onnxruntime" in b["backend"])
    _run([str(exe), "example", "ex"], work, env=env)
    _run([str(exe), "screen", "ex/screen", "--model", f"ex/{MODEL}", "--out", "res"], work,
         env=env)  # fmt: skip
    summary = json.loads((work / "res" / "summary.json").read_text())
    assert summary["ainu_engine_version"] == VERSION
    assert summary["nuclei"] == 5 and summary["failed"] == 0
    meta = _run([str(py), "-c", "import pyarrow.parquet as pq; "
                 "print(pq.read_schema('res/results.parquet').metadata[b'ainu_engine_version'])"],
                work, env=env)  # fmt: skip
    assert VERSION in meta
