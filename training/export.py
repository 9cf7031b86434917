"""Export a trained checkpoint to one self-describing ONNX file, checked against PyTorch.

The file has a dynamic batch axis, opset >= 17, all weights inside (no external-data file),
passes ``onnx.checker`` (full check) and strict shape inference, and carries the
:class:`ainu_engine.model.ModelInfo` (classes, RenderSpec, input size and channels, preprocessing,
training metrics and statistics, provenance) in ``metadata_props``. Before anything is
written, ONNX Runtime runs the model on sample inputs and its logits are compared with
PyTorch's; a model that differs by more than the tolerance is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ainu_engine.compare import Comparison, compare_outputs
from ainu_engine.errors import OutputError, ParityError
from ainu_engine.model import GeneratorInfo, ModelInfo
from ainu_engine.onnx_session import ort_session

__all__ = ["ExportResult", "export_onnx", "MIN_OPSET"]

MIN_OPSET = 17
_TWO_GB = 2**31


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how it was checked.

    Attributes
    ----------
    path : Path
        The .onnx written.
    info : ModelInfo
        Its metadata.
    comparison : Comparison
        ONNX Runtime against PyTorch.
    opset : int
        The ONNX opset.
    sha256 : str
        The file's SHA-256.
    size_bytes : int
        Its size.
    seconds : float
        Wall time.
    precision : str
        ``fp32``, ``fp16`` or ``int8``.
    gate : dict | None
        The reduced-precision model against fp32 on held-out nuclei.
    """

    path: Path
    info: ModelInfo
    comparison: Comparison
    opset: int
    sha256: str
    size_bytes: int
    seconds: float
    precision: str = "fp32"
    gate: dict | None = None


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs warnings about torchvision ops a model never uses."""
    loggers = [
        logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def onnx_bytes_checked(
    model,
    info: ModelInfo | GeneratorInfo,
    out: Path,
    *,
    opset: int = 18,
    atol: float = 1e-4,
    seed: int = 0,
    samples=None,
) -> tuple[bytes, object]:
    """``model`` (float32; the caller puts it in eval mode) as ONNX bytes with ``info`` as its
    metadata, after ONNX Runtime (CPU) matched PyTorch within ``atol`` on random inputs at
    batch 1 and 3 (the dynamic batch axis) and on ``samples``; raises :class:`ParityError`
    (naming ``out``, which is not written) otherwise. Returns (bytes, the comparison).

    The one export gate of every model the project trains: classifiers (:class:`ModelInfo`;
    random inputs in [0, 1)) and generators (:class:`GeneratorInfo`; in [-1, 1))."""
    import torch

    c, s = info.n_channels, info.input_size
    example = torch.zeros(2, c, s, s)
    batch = torch.export.Dim("batch", min=1, max=4096)
    embedding = getattr(info, "embedding_name", None)
    outputs = [info.output_name] + ([embedding] if embedding else [])
    with _quiet_exporter():
        program = torch.onnx.export(
            _with_embedding(model) if embedding else model,
            (example,),
            None,
            input_names=[info.input_name],
            output_names=outputs,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes=({0: batch},),
            optimize=True,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in info.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = _doc_string(info)
    proto.producer_name = "ainu-engine"
    _check_proto(proto, info)
    data = proto.SerializeToString()
    if len(data) >= _TWO_GB:
        raise OutputError("the model is over 2 GB and cannot be stored in one ONNX file", path=out)
    rng = np.random.default_rng(seed)
    low = -1.0 if info.kind == "generator" else 0.0
    inputs = [
        low + (1.0 - low) * rng.random((n, c, s, s), dtype=np.float32) for n in (1, 3)
    ]
    if samples is not None and len(samples):
        inputs.append(np.asarray(samples, np.float32))
    sess = ort_session(data)
    refs, outs, e_refs, e_outs = [], [], [], []
    with torch.inference_mode():
        for x in inputs:
            refs.append(model(torch.from_numpy(x)).numpy())
            got = sess.run(outputs, {info.input_name: x})
            outs.append(got[0])
            if embedding:
                e_refs.append(model.forward_with_embedding(torch.from_numpy(x))[1].numpy())
                e_outs.append(got[1])
    cmp = compare_outputs(np.concatenate(refs), np.concatenate(outs), atol=atol)
    what = "logits" if info.kind != "generator" else "outputs"
    if cmp and embedding:
        cmp_e = compare_outputs(np.concatenate(e_refs), np.concatenate(e_outs), atol=atol)
        if not cmp_e:
            cmp, what = cmp_e, "embeddings"
    if not cmp:
        raise ParityError(
            f"ONNX Runtime and PyTorch {what} differ: {cmp}",
            path=out,
            hint="the model was not written; report this with the checkpoint",
        )
    return data, cmp


def _with_embedding(model):
    """``model`` with two outputs, (logits, penultimate-layer features), for export."""
    import torch

    class WithEmbedding(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.forward_with_embedding(x)

    return WithEmbedding(model)  # the caller put it in eval mode (or, in a test, did not)


def _doc_string(info: ModelInfo | GeneratorInfo) -> str:
    c, s = info.n_channels, info.input_size
    if info.kind == "generator":
        return (
            f"ainu-engine generator ({info.method}); input {info.input_name} float32 (N, {c}, "
            f"{s}, {s}) in [-1, 1], output {info.output_name} (N, {c}, {s}, {s}); see "
            "metadata_props ainu.*"
        )
    return (
        f"ainu-engine {info.model.get('name')} classifier of {', '.join(info.classes)}; "
        f"input {info.input_name} float32 (N, {c}, {s}, {s}), output {info.output_name} (N, "
        f"{len(info.classes)}) logits; see metadata_props ainu.*"
    )


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    opset: int = 18,
    atol: float = 1e-4,
    force: bool = False,
    seed: int = 0,
    precision: str = "fp32",
    calibration: str = "percentile",
    calibrate: str | os.PathLike | None = None,
    int8_activations: str = "s8",
    accept_accuracy_drop: bool = False,
) -> ExportResult:
    """Export ``RUN/best.pt`` to ``out`` (.onnx) after checking ONNX Runtime against PyTorch.

    Parameters
    ----------
    checkpoint : path
        A checkpoint written by ``ainu_engine.training.train.train`` (``best.pt``).
    out : path
        The .onnx file to write (atomically: complete or not at all).
    opset : int, default 18
        ONNX opset (>= 17).
    atol : float, default 1e-4
        Largest allowed ``|logit difference|`` between ONNX Runtime (CPU) and PyTorch (float32,
        eval mode), on the checkpoint's sample test images and on random images, at batch
        sizes 1 and 3 (which also checks the dynamic batch axis).
    force : bool
        Replace an existing ``out``.
    seed : int
        Seed of the random check images.
    precision : {"fp32", "fp16", "int8"}
        ``int8``: ONNX Runtime static quantization (QDQ, per-channel weights), calibrated on
        renders of the run's training nuclei (or of the manifest ``calibrate``) by
        ``calibration`` (minmax, entropy, percentile); ``fp16``: a float16 graph with float32
        inputs and outputs. Either is compared with the float32 model on the run's held-out test
        nuclei (:func:`ainu_engine.training.precision.gate`) and refused when the calls disagree
        on more than 1 % or the accuracy drops by more than a point, unless
        ``accept_accuracy_drop`` (then the drop is in the metadata).
    calibration : {"minmax", "entropy", "percentile"}
        int8: how the activation ranges are calibrated.
    calibrate : path, optional
        int8: a manifest whose nuclei calibrate instead of the run's training nuclei.
    int8_activations : {"s8", "u8"}
        int8 activations signed and symmetric (``s8``: the model also serves TensorRT's
        explicit quantization) or unsigned (``u8``: ONNX Runtime's faster kernels on x86 CPUs;
        TensorRT refuses it).
    accept_accuracy_drop : bool
        Write a reduced-precision model the gate refuses (the drop in its metadata).

    Returns
    -------
    ExportResult

    Raises
    ------
    ainu_engine.errors.ParityError
        ONNX Runtime and PyTorch differ by more than ``atol``; nothing is written.
    ainu_engine.errors.OutputError
        ``out`` exists and ``force`` is False.
    ainu_engine.errors.InputError
        Not a checkpoint.
    """
    import onnx
    import torch

    from .checkpoint import checkpoint_info, load_checkpoint

    t0 = time.perf_counter()
    out = Path(out)
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset!r}")
    if out.exists() and not force:
        raise OutputError("exists already", path=out, hint="pass --force to replace it")
    if not out.parent.is_dir():
        raise OutputError("output folder does not exist", path=out.parent)
    model, ckpt = load_checkpoint(checkpoint)
    ckpt_hash = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    info = checkpoint_info(
        ckpt,
        extra_provenance={
            "checkpoint_sha256": ckpt_hash,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "onnx": onnx.__version__,
            "opset": opset,
            "torch_export": torch.__version__,
        },
    )
    samples = ckpt.get("samples")
    data, cmp = onnx_bytes_checked(model, info, out, opset=opset, atol=atol, seed=seed,
                                   samples=samples)  # fmt: skip

    gate_report = None
    if precision != "fp32":
        data, info, gate_report = _reduce(
            data, precision, Path(checkpoint), info, ckpt, calibration=calibration,
            calibrate=calibrate, accept=accept_accuracy_drop, out=out,
            activations=int8_activations,
        )  # fmt: skip

    from ainu_engine.io import atomic_write_bytes

    atomic_write_bytes(out, data)
    return ExportResult(
        out,
        ModelInfo(**{**info.__dict__, "path": str(out)}),
        cmp,
        opset,
        hashlib.sha256(data).hexdigest(),
        len(data),
        time.perf_counter() - t0,
        precision,
        gate_report,
    )


def _reduce(data: bytes, precision: str, checkpoint: Path, info: ModelInfo, ckpt: dict, *,
            calibration: str, calibrate, accept: bool, out: Path,
            activations: str = "s8"):  # fmt: skip
    """The reduced-precision model with its metadata, after the accuracy gate."""
    import onnx

    from .precision import PRECISIONS, parity, quantize, run_images

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cal_x, test_x, test_y = run_images(checkpoint, info, ckpt, calibrate=calibrate)
    reduced = quantize(data, precision, cal_x, method=calibration, input_name=info.input_name,
                       activations=activations)  # fmt: skip
    report, doc = parity(data, reduced, (test_x, test_y), cal_x, input_name=info.input_name,
                         output_name=info.output_name)  # fmt: skip
    refused = not report.passed and not accept
    kept = _keep_parity(checkpoint, precision, out, doc, calibration=calibration,
                        calibrate=calibrate, activations=activations,
                        written=not refused)  # fmt: skip
    if refused:
        raise ParityError(
            f"the {precision} model is refused: {report} (limits: 1 % disagreement, 1 point of "
            "accuracy)",
            path=out,
            hint=f"nothing was written; the comparison is in {kept}; try another --calibration, "
            "or --accept-accuracy-drop",
        )
    prov = {**info.provenance, "precision": precision,
            "precision_gate": {**report.to_dict(), "accepted_drop": not report.passed}}  # fmt: skip
    if precision == "int8":
        where = str(calibrate) if calibrate else "the run's training nuclei"
        prov["calibration"] = {"method": calibration, "n_images": int(len(cal_x)), "set": where,
                               "activations": activations}  # fmt: skip
    info = ModelInfo(**{**info.__dict__, "provenance": prov})
    proto = onnx.load_from_string(reduced)
    del proto.metadata_props[:]
    for key, value in info.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "ainu-engine"
    return proto.SerializeToString(), info, report.to_dict()


def _keep_parity(checkpoint: Path, precision: str, out: Path, doc: dict, *, calibration: str,
                 calibrate, activations: str, written: bool) -> Path:  # fmt: skip
    """``RUN/parity-<precision>.json``: the reduced model against fp32 (the gate's report, the
    logits compared, the calls on the calibration set), whether the model was written."""
    from ainu_engine.io import atomic_write_bytes
    from ainu_engine.strict_json import dumps

    path = Path(checkpoint).parent / f"parity-{precision}.json"
    record = {
        "model": str(out),
        "checkpoint": str(checkpoint),
        "precision": precision,
        "calibration": {
            "method": calibration,
            "set": str(calibrate) if calibrate else "run",
            "activations": activations,
        }  # fmt: skip
        if precision == "int8"
        else None,
        "written": written,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **doc,
    }
    atomic_write_bytes(path, (dumps(record, indent=2) + "\n").encode())
    return path


def _check_proto(proto, info: ModelInfo | GeneratorInfo) -> None:
    """onnx.checker (full), strict shape inference, dynamic batch, no external data."""
    import onnx

    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(
        proto, check_type=True, strict_mode=True, data_prop=True
    )
    for init in inferred.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"initializer {init.name} uses external data")
    (inp,) = [i for i in inferred.graph.input if i.name == info.input_name]
    dims = inp.type.tensor_type.shape.dim
    if not dims[0].dim_param or [d.dim_value for d in dims[1:]] != [
        info.n_channels,
        info.input_size,
        info.input_size,
    ]:
        raise RuntimeError(f"unexpected input shape {[d.dim_param or d.dim_value for d in dims]}")
    opsets = {o.domain: o.version for o in proto.opset_import}
    if opsets.get("", opsets.get("ai.onnx", 0)) < MIN_OPSET:
        raise RuntimeError(f"opset {opsets} is below {MIN_OPSET}")
