"""Reduced-precision models: int8 (ONNX Runtime static quantization, QDQ, per-channel weights)
and fp16 (a float16 graph with float32 inputs and outputs), and the accuracy gate that decides
whether such a model may be written: it is compared with the float32 model on the run's held-out
test nuclei."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError
from ainu_engine.onnx_session import ort_session
from ainu_engine.scores import softmax

__all__ = [
    "PRECISIONS",
    "CALIBRATIONS",
    "GateReport",
    "run_images",
    "quantize",
    "batchnorm_as_depthwise_conv",
    "gate",
    "parity",
    "logits",
]

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATIONS = ("minmax", "entropy", "percentile")
#: the gate: calls may disagree on at most this fraction of the test nuclei ...
MAX_DISAGREEMENT = 0.01
#: ... and the accuracy may drop by at most this much
MAX_ACCURACY_DROP = 0.01


@dataclass
class GateReport:
    """How a reduced-precision model compares with the float32 one on held-out items.

    Attributes
    ----------
    n : int
        Held-out items compared.
    agreement : float
        Fraction of items with the same call.
    max_abs_dp : float
        Largest ``|p_reduced - p_fp32|`` over items and classes.
    accuracy_fp32 : float
        Accuracy of the float32 model.
    accuracy_reduced : float
        Accuracy of the reduced model.
    roc_auc_fp32 : float | None
        ROC AUC of the float32 model (two classes).
    roc_auc_reduced : float | None
        ROC AUC of the reduced model.
    """

    n: int
    agreement: float
    max_abs_dp: float
    accuracy_fp32: float
    accuracy_reduced: float
    roc_auc_fp32: float | None
    roc_auc_reduced: float | None

    @property
    def passed(self) -> bool:
        return (1.0 - self.agreement) <= MAX_DISAGREEMENT and (
            self.accuracy_fp32 - self.accuracy_reduced
        ) <= MAX_ACCURACY_DROP + 1e-12

    @property
    def disagreement_upper95(self) -> float:
        """The one-sided 95 % upper bound of the disagreement the held-out items allow
        (Clopper-Pearson): 24 items that all agree still allow 11.7 %. Above
        :data:`MAX_DISAGREEMENT` the gate cannot show the limit holds, only that it is not
        clearly broken."""
        from scipy.stats import beta

        if self.n == 0:
            return 1.0
        k = round((1.0 - self.agreement) * self.n)
        return 1.0 if k >= self.n else float(beta.ppf(0.95, k + 1, self.n - k))

    @property
    def underpowered(self) -> bool:
        """Too few held-out items to show the disagreement limit (see above)."""
        return self.disagreement_upper95 > MAX_DISAGREEMENT

    def to_dict(self) -> dict:
        return {**self.__dict__, "passed": self.passed,
                "disagreement_upper95": self.disagreement_upper95,
                "underpowered": self.underpowered,
                "limits": {"max_disagreement": MAX_DISAGREEMENT,
                           "max_accuracy_drop": MAX_ACCURACY_DROP}}  # fmt: skip

    def __str__(self) -> str:
        text = (
            f"calls agree on {self.agreement:.1%} of {self.n} held-out items, max |dp| "
            f"{self.max_abs_dp:.4f}, accuracy {self.accuracy_fp32:.3f} -> "
            f"{self.accuracy_reduced:.3f}"
        )
        if self.underpowered:
            text += (
                f" (too few items to show <= {MAX_DISAGREEMENT:.0%} disagreement: up to "
                f"{self.disagreement_upper95:.1%} at 95 % confidence; compare on more nuclei)"
            )
        return text


def run_images(checkpoint: Path, info, ckpt: dict, *, calibrate: str | Path | None = None):
    """(calibration images, test images, test labels) from the training run of ``checkpoint``:
    its ``data.csv`` says which manifest rows were trained on and which were held out; they are
    rendered (through the render cache) with the model's own RenderSpec. ``calibrate``: a
    manifest whose nuclei calibrate instead of the run's training nuclei.

    Parameters
    ----------
    checkpoint : Path
        ``RUN/best.pt``.
    info : ModelInfo
        Its metadata.
    ckpt : dict
        The checkpoint.
    calibrate : path, optional
        A manifest to calibrate on instead.

    Returns
    -------
    (ndarray, ndarray, ndarray)
    """
    import csv

    from .data import RenderCache, load_nuclei, read_manifest
    from .train import default_cache_dir

    run = Path(checkpoint).parent
    table = run / "data.csv"
    if not table.is_file():
        raise InputError(
            "no data.csv beside the checkpoint: its held-out nuclei are unknown",
            path=checkpoint,
            hint="export from the training run's folder (RUN/best.pt), as train wrote it",
        )
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    classes = tuple(info.classes)
    pre = info.preprocessing or {}
    from ainu_engine.preprocess import Preprocess

    cache = RenderCache(default_cache_dir(), device="cpu", channel_names=info.channel_names,
                        channel_option="--channel-map",
                        preprocess=Preprocess.of_model(pre))  # fmt: skip
    patch = int(pre["patch_size"]) if pre.get("mode") == "patches" else None
    kw = {"patch_size": patch, "min_occupied": float(pre.get("min_occupied", 0.75))}

    def images(split: str):
        sel = [r for r in rows if r["split"] == split and r["label"] in classes]
        if not sel:
            return np.zeros((0,)), np.zeros(0, np.int64)
        m = _run_manifest(sel, classes, info)
        data = load_nuclei(m, info.render_spec, cache, **kw)
        if len(data) == 0:
            raise InputError(f"none of the run's {split} nuclei could be rendered", path=table)
        return np.stack([np.asarray(im, np.float32) for im in data.images]), data.y

    test_x, test_y = images("test")
    if calibrate is not None:
        m = read_manifest(calibrate, classes=classes)
        data = load_nuclei(m, info.render_spec, cache, **kw)
        cal_x = np.stack([np.asarray(im, np.float32) for im in data.images])
    else:
        cal_x, _ = images("train")
    if len(test_x) == 0:
        raise InputError("the run has no held-out test nuclei to gate on", path=table)
    return cal_x, test_x, test_y


def quantize(fp32: bytes, precision: str, calibration_images: np.ndarray, *,
             method: str = "percentile", input_name: str = "image",
             activations: str = "s8") -> bytes:  # fmt: skip
    """The reduced-precision model (bytes) of a float32 ONNX model.

    int8 weights are signed and per channel; ``activations`` ``s8`` are signed and symmetric
    (zero point 0: what TensorRT's explicit quantization takes), ``u8`` unsigned with a zero
    point (ONNX Runtime's x86 CPU kernels are faster for U8S8: 2.5x fp32 against 0.7-0.9x
    for symmetric S8S8 on DenseNet-121 at 512 px, ``benchmarks/results/quantize-cpu.json``).
    Batch norms are rewritten as depthwise convolutions first
    (:func:`batchnorm_as_depthwise_conv`).

    Parameters
    ----------
    fp32 : bytes
        The float32 model.
    precision : {"fp16", "int8"}
        The reduced precision.
    calibration_images : ndarray
        int8: the calibration inputs.
    method : {"percentile", "minmax", "entropy"}
        int8: the calibration method. Percentile (ONNX Runtime's: the 99.999th percentile of
        each activation's magnitudes) by default: on a trained DenseNet-121 its calls agreed
        with fp32 on 99.6 % of 240 new nuclei, minmax's and entropy's on 94.6 %
        (``docs/results/int8-trained``).
    input_name : str
        The model's input.
    activations : {"s8", "u8"}
        int8 activations.

    Returns
    -------
    bytes
    """
    import onnx

    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load_from_string(fp32), keep_io_types=True)
        return model.SerializeToString()
    if precision != "int8":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if activations not in ("s8", "u8"):
        raise ValueError(f"activations must be s8 or u8, got {activations!r}")
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {method!r}")
    if len(calibration_images) == 0:
        raise InputError("no calibration images for int8")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([calibration_images[i : i + 1] for i in range(len(calibration_images))])

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]  # fmt: skip
    act = QuantType.QInt8 if activations == "s8" else QuantType.QUInt8
    graph = onnx.load_from_string(fp32)
    batchnorm_as_depthwise_conv(graph)  # int8 throughout (docs/results/int8-profile)
    with tempfile.TemporaryDirectory(prefix="ainu-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph.SerializeToString())
        # ONNX Runtime's histogram calibrators print their progress to stdout, where
        # `export --json` writes its records: kept for the debug log instead
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8, calibrate_method=calib,
                            activation_type=act,
                            extra_options={"ActivationSymmetric": activations == "s8"})  # fmt: skip
        if said.getvalue().strip():
            logging.getLogger("ainu_engine.training").debug("calibration: %s", said.getvalue())
        return dst.read_bytes()


def batchnorm_as_depthwise_conv(model) -> int:
    """Rewrite every inference-mode BatchNormalization of an ONNX model as the per-channel
    affine map it is, a depthwise 1x1 Conv (weight ``gamma / sqrt(var + eps)``, bias
    ``beta - mean * weight``), in place; returns how many were rewritten.

    Why: a BatchNormalization with no convolution before it to fold into — DenseNet's
    pre-activation ones, after each concatenation — has no int8 kernel in ONNX Runtime, so a
    QDQ model runs it in float32 between a DequantizeLinear and a QuantizeLinear, with layout
    transposes around it. As a Conv it is quantized like every other (QLinearConv): DenseNet-121
    at 512 px went from 1.51x to 3.16x fp32 on a 2-core CPU (``docs/results/int8-profile``).
    The float32 model is the same function (up to rounding).

    Parameters
    ----------
    model : onnx.ModelProto
        Modified in place.

    Returns
    -------
    int
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes, n = [], 0
    for node in model.graph.node:
        params = node.input[1:5]
        if node.op_type != "BatchNormalization" or len(node.output) != 1 or any(
            i not in inits for i in params
        ):
            nodes.append(node)
            continue
        scale, bias, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64)
                                  for i in params)  # fmt: skip
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        weight = scale / np.sqrt(var + eps)
        shift = bias - mean * weight
        c = len(weight)
        stem = f"{node.name or node.output[0]}_as_dwconv"
        model.graph.initializer.extend([
            numpy_helper.from_array(weight.reshape(c, 1, 1, 1).astype(np.float32), stem + "_w"),
            numpy_helper.from_array(shift.astype(np.float32), stem + "_b"),
        ])  # fmt: skip
        nodes.append(helper.make_node("Conv", [node.input[0], stem + "_w", stem + "_b"],
                                      list(node.output), name=stem, group=c,
                                      kernel_shape=[1, 1]))  # fmt: skip
        n += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return n


def logits(model: bytes, x: np.ndarray, *, input_name: str, output_name: str) -> np.ndarray:
    """The model's logits of ``x`` on ONNX Runtime's CPU provider, in batches of 8.

    Parameters
    ----------
    model : bytes
        A serialised ONNX model.
    x : ndarray
        Inputs.
    input_name, output_name : str
        Its tensors.

    Returns
    -------
    ndarray
    """
    if len(x) == 0:
        return np.zeros((0, 0))
    sess = ort_session(model)
    return np.concatenate([sess.run([output_name], {input_name: x[i : i + 8]})[0]
                           for i in range(0, len(x), 8)])  # fmt: skip


def gate(fp32: bytes, reduced: bytes, x: np.ndarray, y: np.ndarray, *, input_name: str,
         output_name: str, z32: np.ndarray | None = None,
         zq: np.ndarray | None = None) -> GateReport:  # fmt: skip
    """The reduced model against the float32 one on held-out items ``x`` with labels ``y``
    (``z32``, ``zq``: their logits, when already computed).

    Parameters
    ----------
    fp32, reduced : bytes
        The float32 and the reduced model.
    x, y : ndarray
        Held-out inputs and labels.
    input_name, output_name : str
        The tensors.
    z32, zq : ndarray, optional
        Their logits, when already computed.

    Returns
    -------
    GateReport
    """
    from sklearn.metrics import roc_auc_score

    names = {"input_name": input_name, "output_name": output_name}
    z32 = logits(fp32, x, **names) if z32 is None else z32
    zq = logits(reduced, x, **names) if zq is None else zq
    p32 = softmax(np.asarray(z32, np.float64), axis=1)
    pq = softmax(np.asarray(zq, np.float64), axis=1)

    def auc(p):
        if p.shape[1] != 2 or len(set(y.tolist())) < 2:
            return None
        return float(roc_auc_score(y, p[:, 1]))

    return GateReport(
        len(y), float((p32.argmax(1) == pq.argmax(1)).mean()), float(np.abs(p32 - pq).max()),
        float((p32.argmax(1) == y).mean()), float((pq.argmax(1) == y).mean()), auc(p32), auc(pq),
    )  # fmt: skip


def parity(fp32: bytes, reduced: bytes, test: tuple, calibration: np.ndarray, *,
           input_name: str, output_name: str) -> tuple[GateReport, dict]:  # fmt: skip
    """The gate's report on the held-out ``test`` (images, labels), and the whole comparison as
    data: that report, the logits compared element-wise (:func:`compare_outputs`), and the
    agreement of the calls on the calibration images (no labels there: the calls only).

    Parameters
    ----------
    fp32, reduced : bytes
        The float32 and the reduced model.
    test : (ndarray, ndarray)
        Held-out inputs and labels.
    calibration : ndarray
        The calibration inputs.
    input_name, output_name : str
        The tensors.

    Returns
    -------
    (GateReport, dict)
    """
    from ainu_engine.compare import compare_outputs

    names = {"input_name": input_name, "output_name": output_name}
    x, y = test
    z32, zq = logits(fp32, x, **names), logits(reduced, x, **names)
    report = gate(fp32, reduced, x, y, z32=z32, zq=zq, **names)
    c32, cq = logits(fp32, calibration, **names), logits(reduced, calibration, **names)
    cal = {"n": int(len(calibration))}
    if len(calibration):
        cal["agreement"] = float((c32.argmax(1) == cq.argmax(1)).mean())
        cal["logits"] = _differences(compare_outputs(c32, cq))
    doc = {
        "test": report.to_dict(),
        "test_logits": _differences(compare_outputs(z32, zq)),
        "calibration_set": cal,
    }
    return report, doc


def _differences(cmp) -> dict:
    """A comparison's measured differences (no tolerance applies here: the gate decides)."""
    return {k: v for k, v in cmp.to_dict().items() if k not in ("passed", "atol", "rtol")}


def _run_manifest(rows: list[dict], classes, info):
    """The manifest of some rows of a run's ``data.csv``: with each row's cell (``nucleus``, as
    the model's training split its fields) and channel map (``channels``) where the run had them.
    """
    from dataclasses import replace

    from ainu_engine.render import parse_row_channels, row_channel_map

    from .data import Manifest

    m = Manifest.from_rows([Path(r["path"]) for r in rows], [r["label"] for r in rows],
                           classes=classes)  # fmt: skip
    if any(r.get("channels") for r in rows):
        names = tuple(info.channel_names)
        m = replace(m, channel_names=names, channel_maps=tuple(
            row_channel_map(parse_row_channels(r["channels"]) or {}, names, path=r["path"])
            for r in rows))  # fmt: skip
    if any(r.get("nucleus") for r in rows):
        rec = (info.training_stats or {}).get("nuclei") or {}
        limits = tuple(rec["area_limits_um2"]) if rec.get("area_limits_um2") else None
        m = replace(m, nucleus_ids=tuple(r["nucleus"] for r in rows),
                    nuclei=(rec.get("mode", "detect"), limits))  # fmt: skip
    return m
