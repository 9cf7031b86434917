"""A BioImage Model Zoo package (bioimage.io model spec 0.5) of a trained classifier:
``ainu-engine export RUN/best.pt --bioimageio OUT.zip``.

The package carries the classifier: ONNX weights (the engine's export, checked against PyTorch)
and the PyTorch state dict (architecture from ``ainu_engine.training.models.create_model``), a
test input rendered from one of the run's held-out nuclei with the expected output, a cover
image of that input, and documentation with the RenderSpec and the training data. It does not
carry the rendering: a bioimage.io model maps tensors to tensors, and the KDE rendering of
localizations is no preprocessing the spec can express; ``ainu-engine render FILE --model
model.onnx`` makes the input the model expects.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError, OutputError
from ainu_engine.onnx_session import ort_session

__all__ = ["BioimageioResult", "export_bioimageio", "CITATION", "LICENSE"]

CITATION = {
    "text": "Carnevali, D. et al. A deep learning method that identifies cellular heterogeneity "
    "using nanoscale nuclear features. Nature Machine Intelligence 6, 1021-1033 (2024).",
    "doi": "10.1038/s42256-024-00883-x",
}
#: the licence of the package's weights and files (the project's own)
LICENSE = "BSD-3-Clause"


@dataclass
class BioimageioResult:
    """What :func:`export_bioimageio` wrote.

    Attributes
    ----------
    path : Path
        The package (.zip).
    size_bytes : int
        Its size.
    model_name : str
        The model's name in the package.
    files : list of str
        The files in the package.
    test_summary : dict or None
        bioimageio.core's test of the package, where it ran.
    """

    path: Path
    size_bytes: int
    model_name: str
    files: list[str]
    test_summary: dict | None


def _require():
    from ainu_engine.optional import require

    require("bioimageio.spec", "bioimageio", why="a bioimage.io package", error=InputError)


def _test_tensors(checkpoint: Path, info, ckpt: dict):
    """(input (1, C, S, S), its label) of the run's first held-out nucleus, rendered as the
    model renders it."""
    from .precision import run_images

    _, test_x, test_y = run_images(checkpoint, info, ckpt)
    x = np.asarray(test_x[:1], np.float32)
    if x.ndim == 5:  # patch mode: (N, P, C, S, S) - the first patch is one model input
        x = x[:, 0]
    return x, int(test_y[0])


def _logits(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    s = ort_session(onnx_path)
    return s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _cover(path: Path, x: np.ndarray, info, probs: np.ndarray) -> None:
    """A 2:1 cover: the test input's channels and the model's call of it."""
    from matplotlib.figure import Figure

    c = x.shape[1]
    fig = Figure(figsize=(8, 4), dpi=100)
    axes = fig.subplots(1, c + 1, squeeze=False)[0]
    for k in range(c):
        axes[k].imshow(x[0, k], cmap="magma")
        axes[k].set_title(info.channel_names[k] if k < len(info.channel_names) else f"ch {k}")
        axes[k].axis("off")
    ax = axes[-1]
    classes = list(info.classes)
    ax.barh(classes, probs[0], color=["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][: len(classes)])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.set_title("the model's call")
    fig.suptitle(f"ainu-engine {info.model.get('name', 'model')}: {' vs '.join(classes)}")
    fig.tight_layout()
    fig.savefig(path, format="png")


def _documentation(info, ckpt: dict, temperature: float) -> str:
    spec = info.render_spec
    prov = info.provenance or {}
    metrics = (info.metrics or {}).get("test") or {}
    rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in spec.to_dict().items())
    scores = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float))
    stats = json.dumps(info.training_stats or {}, indent=2, default=str)
    return f"""# {info.model.get("name", "ainu-engine model")}: {" vs ".join(info.classes)}

A classifier of cell nuclei imaged by single-molecule localization microscopy (the AINU method,
Carnevali et al., *Nature Machine Intelligence* 6, 1021-1033, 2024,
doi:{CITATION["doi"]}), trained and exported by ainu-engine.

## What the package carries, and what it does not

The weights map an image to the classes' logits; the postprocessing here turns them into
probabilities (softmax{
        f" of the logits divided by the fitted temperature {temperature:.4g}"
        if temperature != 1.0
        else ""
    }). **The input is not a microscope image**:
it is a Gaussian kernel density estimate of the nucleus' localizations, rendered with the
RenderSpec below, one image channel per localization channel ({", ".join(info.channel_names)}).
The BioImage Model Zoo describes tensors in and out; it cannot express rendering localizations,
so the package does not carry it. Make the input with ainu-engine:

```console
$ ainu-engine render nucleus.csv --model model.onnx --out inputs/ --image-format npy
```

(the `.npy` written is (C, {info.input_size}, {info.input_size}); add a batch axis), or classify
the localization files directly with `ainu-engine screen FILES --model model.onnx --out OUT`.

## Input

- `image`: float32 (batch, channel, y, x) = (N, {len(info.channel_names)}, {info.input_size},
  {info.input_size}), channels {", ".join(info.channel_names)}; each channel scaled to [0, 1]
  as the RenderSpec says.
- Preprocessing for the model: {json.dumps(info.preprocessing or {"mode": "image"})}.

## RenderSpec

| field | value |
| --- | --- |
{rows}

## Output

`probabilities`: (N, {len(info.classes)}), classes {", ".join(info.classes)}, in that order.

## Training

- Trained on: {prov.get("training_data") or "(not recorded)"}
- Architecture: {info.model.get("name")} ({json.dumps(ckpt.get("model_config") or {})})
- Test set: {scores or "(not recorded)"}
- Ranges of the training nuclei (the engine's QC flags nuclei outside them):

```json
{stats}
```

## Citation

{CITATION["text"]} doi:{CITATION["doi"]}
"""


def _descr(info, ckpt: dict, files: dict, *, opset: int, temperature: float):
    import torch
    from bioimageio.spec.model.v0_5 import (
        ArchitectureFromLibraryDescr,
        Author,
        AxisId,
        BatchAxis,
        ChannelAxis,
        CiteEntry,
        Doi,
        FileDescr,
        Identifier,
        InputTensorDescr,
        IntervalOrRatioDataDescr,
        LicenseId,
        ModelDescr,
        OnnxWeightsDescr,
        OutputTensorDescr,
        PytorchStateDictWeightsDescr,
        ScaleLinearDescr,
        ScaleLinearKwargs,
        SoftmaxDescr,
        SoftmaxKwargs,
        SpaceInputAxis,
        TensorId,
        Version,
        WeightsDescr,
    )

    spec = info.render_spec
    size = int(info.input_size)
    mc = ckpt["model_config"]
    channel_ids = [Identifier(_ident(c)) for c in info.channel_names]
    class_ids = [Identifier(_ident(c)) for c in info.classes]
    image = InputTensorDescr(
        id=TensorId("image"),
        axes=[
            BatchAxis(),
            ChannelAxis(channel_names=channel_ids),
            SpaceInputAxis(
                id=AxisId("y"), size=size, scale=float(spec.pixel_nm or 1.0), unit="nanometer"
            ),
            SpaceInputAxis(
                id=AxisId("x"), size=size, scale=float(spec.pixel_nm or 1.0), unit="nanometer"
            ),
        ],  # fmt: skip
        test_tensor=FileDescr(source=files["test_input"]),
        data=IntervalOrRatioDataDescr(type="float32"),
        description="localizations rendered by a Gaussian KDE (ainu-engine render --model), "
        "not a microscope image",
    )
    post = []
    if temperature != 1.0:
        post.append(ScaleLinearDescr(kwargs=ScaleLinearKwargs(gain=1.0 / temperature)))
    post.append(SoftmaxDescr(kwargs=SoftmaxKwargs(axis=AxisId("channel"))))  # the classes
    probabilities = OutputTensorDescr(
        id=TensorId("probabilities"),
        axes=[BatchAxis(), ChannelAxis(channel_names=class_ids)],
        test_tensor=FileDescr(source=files["test_output"]),
        data=IntervalOrRatioDataDescr(type="float32"),
        postprocessing=post,
        description=f"probability of each class ({', '.join(info.classes)})"[:128],
    )
    arch = ArchitectureFromLibraryDescr(
        import_from="ainu_engine.training.models",
        callable=Identifier("create_model"),
        kwargs={"name": mc["name"], "in_chans": int(mc["in_chans"]),
                "num_classes": int(mc["num_classes"]), **(mc.get("kwargs") or {})},
    )  # fmt: skip
    weights = WeightsDescr(
        pytorch_state_dict=PytorchStateDictWeightsDescr(
            source=files["state_dict"], architecture=arch,
            pytorch_version=Version(torch.__version__.split("+")[0]),
            comment="needs ainu-engine[train] installed (the architecture's library)",
        ),
        onnx=OnnxWeightsDescr(source=files["onnx"], opset_version=opset,
                              parent="pytorch_state_dict"),
    )  # fmt: skip
    name = f"ainu-engine {mc['name']} {' vs '.join(info.classes)}"
    return ModelDescr(
        name=_name(name),
        description=f"Classifies SMLM nuclei ({', '.join(info.channel_names)} renders) as "
        f"{', '.join(info.classes)} (the AINU method); input rendered from localizations by "
        "ainu-engine.",
        authors=[Author(name="ainu-engine developers")],
        cite=[CiteEntry(text=CITATION["text"], doi=Doi(CITATION["doi"]))],
        license=LicenseId(LICENSE),
        documentation=FileDescr(source=files["documentation"]),
        covers=[FileDescr(source=files["cover"])],
        tags=[
            "smlm",
            "single-molecule-localization-microscopy",
            "nucleus",
            "classification",
            "ainu",
            "pytorch",
            "onnx",
        ],  # fmt: skip
        inputs=[image],
        outputs=[probabilities],
        weights=weights,
        version="0.1.0",
    )


def _ident(text: str) -> str:
    """An identifier of the spec (a letter first, then letters, digits and _) for a channel or
    class name."""
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(text))
    return out if out[:1].isalpha() else f"c_{out}"


def _name(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in " _-()" else " " for ch in text)
    return " ".join(keep.split())[:128]


def _validate(path: Path) -> dict | None:
    """bioimageio.core's test of the package (both weight formats reproduce the test output),
    offline; None where bioimageio.core is not installed."""
    try:
        from bioimageio.core import test_model
    except ImportError:
        return None
    summary = test_model(path)  # offline: export_bioimageio sets BIOIMAGEIO_PERFORM_IO_CHECKS
    doc = {"status": summary.status,
           "details": [{"name": d.name, "status": d.status,
                        "errors": [str(e.msg) for e in (d.errors or [])]}
                       for d in summary.details]}  # fmt: skip
    if summary.status != "passed":
        failed = [d for d in doc["details"] if d["status"] != "passed"]
        first = failed[0] if failed else {"name": "?", "errors": []}
        raise OutputError(
            f"the bioimage.io package fails bioimageio.core's test: {first['name']}: "
            f"{'; '.join(first['errors'])[:300]}",
            path=path,
        )
    return doc


def export_bioimageio(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                      onnx_model: str | os.PathLike | None = None, opset: int = 18,
                      force: bool = False, validate: bool = True) -> BioimageioResult:  # fmt: skip
    """Write the BioImage Model Zoo package of ``checkpoint`` to ``out`` (a .zip).

    ``onnx_model`` is the fp32 ONNX export of the same checkpoint (exported here when None).
    With ``validate``, bioimageio.core tests the package before it is kept (where installed):
    a package that fails is not written.

    Parameters
    ----------
    checkpoint : path
        ``RUN/best.pt``.
    out : path
        The package (.zip).
    onnx_model : path, optional
        The fp32 ONNX export.
    opset : int
        The ONNX opset of an export made here.
    force : bool
        Replace ``out``.
    validate : bool
        Test the package with bioimageio.core.

    Returns
    -------
    BioimageioResult

    Raises
    ------
    ainu_engine.errors.InputError
        No bioimageio.spec, or not a checkpoint.
    ainu_engine.errors.OutputError
        ``out`` exists and ``force`` is False, or the package fails its test.
    """
    _require()
    import torch
    from bioimageio.spec import save_bioimageio_package

    from ainu_engine.io import atomic_path
    from ainu_engine.model import read_model_info, temperature_of

    from .checkpoint import read_checkpoint
    from .export import export_onnx

    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix.lower() != ".zip":
        raise InputError("a bioimage.io package is a .zip file", path=out,
                         hint="--bioimageio OUT.zip")  # fmt: skip
    if out.exists() and not force:
        raise OutputError("exists", path=out, hint="--force to replace it")
    ckpt = read_checkpoint(checkpoint)
    with tempfile.TemporaryDirectory(prefix="ainu-bioimageio-") as d:
        tmp = Path(d)
        onnx_path = tmp / "model.onnx"
        if onnx_model is None:
            export_onnx(checkpoint, onnx_path, opset=opset)
        else:
            onnx_path.write_bytes(Path(onnx_model).read_bytes())
        info = read_model_info(onnx_path)
        if info.precision != "fp32":
            raise InputError(f"the ONNX model is {info.precision}: a bioimage.io package "
                             "carries fp32 weights", path=onnx_model)  # fmt: skip
        temperature = temperature_of(info)
        x, _ = _test_tensors(checkpoint, info, ckpt)
        probs = _softmax(_logits(onnx_path, x) / temperature).astype(np.float32)
        files = {
            "onnx": onnx_path,
            "state_dict": tmp / "weights.pt",
            "test_input": tmp / "test_input.npy",
            "test_output": tmp / "test_output.npy",
            "cover": tmp / "cover.png",
            "documentation": tmp / "README.md",
        }
        torch.save(ckpt["state_dict"], files["state_dict"])
        np.save(files["test_input"], x)
        np.save(files["test_output"], probs)
        _cover(files["cover"], x, info, probs)
        files["documentation"].write_text(_documentation(info, ckpt, temperature),
                                          encoding="utf-8")  # fmt: skip
        os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "0")
        descr = _descr(info, ckpt, files, opset=opset, temperature=temperature)
        staged = tmp / "package.zip"
        save_bioimageio_package(descr, output_path=staged)
        summary = _validate(staged) if validate else None
        with zipfile.ZipFile(staged) as z:
            names = sorted(z.namelist())
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as t:
            Path(t).write_bytes(staged.read_bytes())
    return BioimageioResult(out, out.stat().st_size, descr.name, names, summary)
