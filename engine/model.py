"""What an exported ainu-engine model says about itself (the ONNX file's ``metadata_props``).

One ``.onnx`` file is self-describing: class names, the full
:class:`~ainu_engine.render.RenderSpec`,
the input size and channel layout, the preprocessing, the training metrics and statistics,
and the provenance travel in it as ``ainu.*`` keys with JSON values, so screening needs
nothing but the model file and the data. :class:`ModelInfo` is the one place that writes and
reads those keys (training writes them at export, the engine reads them to screen).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, MissingDependency
from .optional import install_hint
from .render import RenderSpec

__all__ = [
    "KINDS",
    "METADATA_VERSION",
    "GeneratorInfo",
    "ModelInfo",
    "model_info_from_metadata",
    "read_model_info",
    "require_kind",
    "temperature_of",
]

#: Version of the metadata layout; readers refuse a newer major version.
METADATA_VERSION = 1
_PREFIX = "ainu."


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to feed a model and to interpret its output.

    Attributes
    ----------
    classes : tuple of str
        Class names in logit order.
    render_spec : RenderSpec
        How nuclei were rendered for training (pixel size, bandwidth, channels, size...).
    input_name, output_name : str
        ONNX tensor names; the input is float32 (N, C, S, S), the output (N, K) logits
        (softmax gives the class probabilities).
    input_size : int
        S, the side of the square input image (the RenderSpec size, or the patch size).
    channel_names : tuple of str
        One name per image channel (C of them), e.g. ``("polII", "h3")``.
    preprocessing : dict
        ``mode`` (``"image"``: one render per nucleus; ``"patches"``: S x S patches of a raw
        render, each scaled per channel like an image, a nucleus's call = the class more than
        half of its patches vote for), ``patch_size``, ``min_occupied``, ``scaling``.
    metrics : dict
        Test-set and cross-validation summary from training.
    training_stats : dict
        Ranges of the training nuclei (localizations per channel, area, density) for QC.
    provenance : dict
        git commit, manifest hash, creation time, library versions, checkpoint hash.
    model : dict
        The model's registry config (architecture, in_chans, num_classes, options).
    path : str or None
        The file it was read from.
    embedding_name : str or None
        The graph's second output, the penultimate-layer features (N, d) the
        out-of-distribution score uses (``training_stats["ood"]``); None in models from before
        it.
    """

    classes: tuple[str, ...]
    render_spec: RenderSpec
    input_size: int
    channel_names: tuple[str, ...]
    preprocessing: dict = field(default_factory=lambda: {"mode": "image"})
    metrics: dict = field(default_factory=dict)
    training_stats: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    input_name: str = "image"
    output_name: str = "logits"
    path: str | None = None
    embedding_name: str | None = None

    @property
    def kind(self) -> str:
        """``"classifier"`` (SMLM renders) or ``"widefield-classifier"`` (SCENMED's crops)."""
        return "widefield-classifier" if self.preprocessing.get("mode") == "widefield" else (
            "classifier"
        )

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        return ("batch", self.n_channels, self.input_size, self.input_size)

    def output_shape(self, n: int) -> tuple[int, ...]:
        """The output of ``n`` inputs: (n, K) logits."""
        return (n, len(self.classes))

    @property
    def precision(self) -> str:
        """``fp32``, ``fp16`` or ``int8``: how the graph's weights and arithmetic are stored
        (``ainu-engine export --precision``); the input and output are float32 in every case."""
        return str((self.provenance or {}).get("precision", "fp32"))

    def summary(self) -> dict:
        """What a person receiving the model wants to know first, as a plain dict: classes,
        input, how nuclei are rendered for it, what it was trained on and how it tested."""
        spec = self.render_spec
        test = (self.metrics or {}).get("test", {})
        stats = self.training_stats or {}
        return {
            "path": self.path,
            "kind": "model",
            "classes": list(self.classes),
            "architecture": (self.model or {}).get("name"),
            "input": f"{self.n_channels} x {self.input_size} x {self.input_size}",
            "channel_names": list(self.channel_names),
            "mode": self.preprocessing.get("mode", "image"),
            "patch_size": self.preprocessing.get("patch_size"),
            "preprocess": self.preprocessing.get("localizations"),
            "render": {
                "pixel_nm": spec.pixel_nm,
                "magnification": spec.magnification,
                "camera_pixel_nm": spec.camera_pixel_nm,
                "sigma_nm": "from precision" if spec.sigma_from_precision else spec.sigma_nm,
                "truncate_sigma": spec.truncate,
                "size": spec.size,
                "channels": spec.channels,
                "scaling": spec.scaling,
                "outside": spec.outside,
                "hash": spec.hash(),
            },
            "training_data": (self.provenance or {}).get("training_data"),
            "training_nuclei": stats.get("n_nuclei"),
            "training_ranges": {k: _range(v) for k, v in stats.items() if _range(v) is not None},
            "test": {
                k: test[k]
                for k in ("n", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc")
                if k in test
            },
            "calibration": (self.metrics or {}).get("calibration"),
            "out_of_distribution": _ood_summary(stats, self.embedding_name),
            "precision": self.precision,
            "precision_gate": (self.provenance or {}).get("precision_gate"),
            "created": (self.provenance or {}).get("created"),
            "git_commit": (self.provenance or {}).get("git_commit"),
        }

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` of the ONNX file (string keys and JSON string values)."""
        d = {
            "version": METADATA_VERSION,
            "classes": list(self.classes),
            "render_spec": self.render_spec.to_dict(),
            "input": {
                "name": self.input_name,
                "shape": list(self.input_shape),
                "dtype": "float32",
                "layout": "NCHW",
                "size": self.input_size,
                "channel_names": list(self.channel_names),
            },
            "output": {
                "name": self.output_name,
                "kind": "logits",
                "probabilities": "softmax over axis 1",
                **({"embedding": self.embedding_name} if self.embedding_name else {}),
            },
            "preprocessing": self.preprocessing,
            "metrics": self.metrics,
            "training_stats": self.training_stats,
            "provenance": self.provenance,
            "model": self.model,
        }
        return {_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in d.items()}

    @classmethod
    def from_metadata(
        cls, props: dict[str, str], *, path: str | os.PathLike | None = None
    ) -> ModelInfo:
        """Parse ``metadata_props``; raises :class:`InputError` naming the file and key."""
        p = None if path is None else os.fspath(path)
        if _PREFIX + "classes" not in props:
            raise InputError(
                "not an ainu-engine model: no 'ainu.classes' metadata",
                path=p,
                hint="export it with `ainu-engine export RUN/best.pt`",
            )

        def get(key, default=None):
            raw = props.get(_PREFIX + key)
            if raw is None:
                if default is None:
                    raise InputError(f"model metadata lacks 'ainu.{key}'", path=p)
                return default
            try:
                return json.loads(raw)
            except json.JSONDecodeError as err:
                raise InputError(
                    f"model metadata 'ainu.{key}' is not valid JSON: {err}", path=p
                ) from err

        version = get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            raise InputError(
                f"model metadata 'ainu.version' is {version!r}, not an integer", path=p
            )
        if version > METADATA_VERSION:
            raise InputError(
                f"model metadata version {version} is newer than this ainu-engine "
                f"understands ({METADATA_VERSION})",
                path=p,
                hint="upgrade ainu-engine",
            )
        try:
            spec = RenderSpec.from_dict(get("render_spec"))
        except (TypeError, ValueError) as err:
            raise InputError(
                f"model metadata 'ainu.render_spec' is invalid: {err}", path=p
            ) from err
        inp, out = get("input"), get("output", {"name": "logits"})
        if not isinstance(inp, dict) or not isinstance(out, dict):
            raise InputError(
                "model metadata 'ainu.input' and 'ainu.output' must be objects", path=p
            )
        info = cls(
            classes=_names(get("classes"), "classes", p),
            render_spec=spec,
            input_size=_size(inp.get("size"), "input size", p),
            channel_names=_names(inp.get("channel_names"), "input channel_names", p),
            preprocessing=_preprocessing(get("preprocessing", {"mode": "image"}), p),
            metrics=get("metrics", {}),
            training_stats=get("training_stats", {}),
            provenance=get("provenance", {}),
            model=get("model", {}),
            input_name=str(inp.get("name", "image")),
            output_name=str(out.get("name", "logits")),
            path=p,
            embedding_name=str(out["embedding"]) if out.get("embedding") else None,
        )
        if spec.channels is not None and len(spec.channels) != info.n_channels:
            raise InputError(
                f"model metadata lists {info.n_channels} input channels but its RenderSpec renders "
                f"{len(spec.channels)}",
                path=p,
            )
        if len(info.classes) < 2:
            raise InputError(
                f"model metadata names {len(info.classes)} class; a classifier has two or more",
                path=p,
            )
        return info


@dataclass(frozen=True)
class GeneratorInfo:
    """An image-to-image model: nucleus prediction's generator (actin in, nucleus out).

    Attributes
    ----------
    input_size : int
        S, the side of the square tiles the generator takes (N, 3, S, S), RGB in [-1, 1]
        (8-bit / 127.5 - 1, the actin in green).
    target : str
        What it was trained to draw: ``"nucleus"`` (the paper's target) or ``"merged"`` (the
        public code's composite: nucleus in red beside the actin in green).
    pixel_um : float or None
        The pixel size of its training tiles (µm).
    method, model, provenance
        A description of the method, the generator's config, and how it was made.
    input_name, output_name : str
        ONNX tensor names (``actin``, ``nucleus``); the output is (N, 3, S, S) in [-1, 1].
    path : str or None
        The file it was read from.
    channel_names : tuple of str
        The input's channels (red, green, blue).
    """

    input_size: int
    target: str = "nucleus"
    pixel_um: float | None = None
    method: str = ""
    model: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    input_name: str = "actin"
    output_name: str = "nucleus"
    path: str | None = None
    channel_names: tuple[str, ...] = ("red", "green", "blue")

    kind = "generator"

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        return ("batch", self.n_channels, self.input_size, self.input_size)

    def output_shape(self, n: int) -> tuple[int, ...]:
        """The output of ``n`` tiles: (n, 3, S, S)."""
        return (n, self.n_channels, self.input_size, self.input_size)

    @property
    def precision(self) -> str:
        return str((self.provenance or {}).get("precision", "fp32"))

    def summary(self) -> dict:
        """What a person receiving the model wants to know first, as a plain dict."""
        return {
            "path": self.path,
            "kind": self.kind,
            "method": self.method,
            "input": f"{self.n_channels} x {self.input_size} x {self.input_size}",
            "target": self.target,
            "pixel_um": self.pixel_um,
            "precision": self.precision,
            "created": (self.provenance or {}).get("exported"),
        }

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` of the ONNX file (string keys and JSON string values)."""
        s = self.input_size
        d = {
            "version": METADATA_VERSION,
            "kind": self.kind,
            "method": self.method,
            "input": {"name": self.input_name, "shape": ["batch", self.n_channels, s, s],
                      "range": [-1, 1], "normalisation": "8-bit RGB / 127.5 - 1 (actin in green)"},
            "output": {"name": self.output_name, "range": [-1, 1], "target": self.target},
            "pixel_um": self.pixel_um,
            "model": self.model,
            "provenance": self.provenance,
        }  # fmt: skip
        return {_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in d.items()}

    @classmethod
    def from_metadata(
        cls, props: dict[str, str], *, path: str | os.PathLike | None = None
    ) -> GeneratorInfo:
        """Parse a generator's ``metadata_props``; raises :class:`InputError` naming the file."""
        p = None if path is None else os.fspath(path)
        meta = _json_props(props, p)
        inp, out = meta.get("input"), meta.get("output", {})
        if not isinstance(inp, dict) or not isinstance(out, dict):
            raise InputError("generator metadata 'ainu.input' and 'ainu.output' must be objects",
                             path=p)  # fmt: skip
        shape = inp.get("shape")
        if not isinstance(shape, list) or len(shape) != 4 or shape[1] != 3:
            raise InputError(f"generator metadata input shape is {shape!r}, not [N, 3, S, S]",
                             path=p)  # fmt: skip
        pixel = meta.get("pixel_um")
        return cls(
            input_size=_size(shape[-1], "input size", p),
            target=str(out.get("target") or "nucleus"),
            pixel_um=None if pixel is None else float(pixel),
            method=str(meta.get("method", "")),
            model=meta.get("model") or {},
            provenance=meta.get("provenance") or {},
            input_name=str(inp.get("name", "actin")),
            output_name=str(out.get("name", "nucleus")),
            path=p,
        )


#: The kinds of model the engine runs, and the API that runs each.
KINDS = {
    "classifier": "ainu_engine.Classifier (ainu-engine screen)",
    "widefield-classifier": (
        "ainu_engine.scenmed.WidefieldClassifier (ainu-engine widefield screen)"
    ),
    "generator": "ainu_engine.nucleus_prediction.Generator (ainu-engine nucleus predict)",
}


def require_kind(info: ModelInfo | GeneratorInfo, kind: str) -> None:
    """Raise a one-line :class:`InputError` unless ``info`` is a model of ``kind``.

    Parameters
    ----------
    info : ModelInfo or GeneratorInfo
        The model's metadata.
    kind : str
        One of :data:`KINDS`.

    Raises
    ------
    ainu_engine.errors.InputError
        The model is of another kind; the hint names the API that runs it.
    """
    if info.kind != kind:
        raise InputError(
            f"a {info.kind} model cannot be used as a {kind}",
            path=info.path,
            hint=f"run it with {KINDS.get(info.kind, info.kind)}",
        )


def _json_props(props: dict[str, str], path) -> dict:
    """The ``ainu.*`` keys of ``props``, JSON-decoded."""
    out = {}
    for key, raw in props.items():
        if not key.startswith(_PREFIX):
            continue
        try:
            out[key[len(_PREFIX) :]] = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(f"model metadata '{key}' is not valid JSON: {err}", path=path) from err
    version = out.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > METADATA_VERSION:
        raise InputError(
            f"model metadata version {version} is newer than this ainu-engine understands "
            f"({METADATA_VERSION})",
            path=path,
            hint="upgrade ainu-engine",
        )
    return out


def model_info_from_metadata(
    props: dict[str, str], *, path: str | os.PathLike | None = None
) -> ModelInfo | GeneratorInfo:
    """The metadata of any kind of ainu-engine model.

    Parameters
    ----------
    props : dict of str to str
        The ONNX file's ``metadata_props``.
    path : str or os.PathLike, optional
        The file, named in errors.

    Returns
    -------
    ModelInfo or GeneratorInfo
        A :class:`GeneratorInfo` where ``ainu.kind`` says ``generator``, else a classifier's
        :class:`ModelInfo`.

    Raises
    ------
    ainu_engine.errors.InputError
        Not an ainu-engine model, or metadata that do not parse.
    """
    if props.get(_PREFIX + "kind") == json.dumps("generator"):
        return GeneratorInfo.from_metadata(props, path=path)
    return ModelInfo.from_metadata(props, path=path)


#: ``image`` and ``patches``: SMLM renders (:mod:`ainu_engine.render`); ``widefield``: SCENMED
#: crops or patches of widefield DAPI images (:mod:`ainu_engine.scenmed`), whose RenderSpec only
#: records the pixel (``pixel_nm``) and the crop side (``size``).
PREPROCESSING_MODES = ("image", "patches", "widefield")

#: the largest model input side the engine accepts (a 16384 x 16384 float32 image is 1 GiB)
MAX_INPUT_SIZE = 16384


def _names(v, what: str, path) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise InputError(
            f"model metadata {what} must be a list of names, got {v!r}"[:200], path=path
        )
    if len(set(v)) != len(v):
        raise InputError(f"model metadata {what} repeat a name: {v}"[:200], path=path)
    return tuple(v)


def _size(v, what: str, path, *, largest: int = MAX_INPUT_SIZE) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= largest:
        raise InputError(
            f"model metadata {what} is {v!r}, not an integer in 1..{largest}", path=path
        )
    return v


def _preprocessing(pre, path) -> dict:
    if not isinstance(pre, dict) or pre.get("mode", "image") not in PREPROCESSING_MODES:
        raise InputError(
            f"model metadata preprocessing is {pre!r}"[:200],
            path=path,
            expected="mode 'image', 'patches' or 'widefield'",
        )
    if pre.get("mode") == "patches":
        _size(pre.get("patch_size"), "patch_size of patch mode", path)
    if pre.get("localizations"):  # the preprocessing every call applies: it must parse
        from .preprocess import Preprocess

        try:
            Preprocess.of_model(pre)
        except (TypeError, ValueError) as err:
            msg = f"model metadata preprocessing.localizations: {err}"[:200]
            raise InputError(msg, path=path, expected="Preprocess fields") from None
    return pre


def _ood_summary(stats: dict, embedding: str | None) -> dict:
    """What ``info`` says of the model's out-of-distribution reference (or that it has none)."""
    ood = stats.get("ood")
    if not ood:
        from .ood import NO_REFERENCE_NOTE

        return {"reference": False, "note": NO_REFERENCE_NOTE}
    feats = ood.get("features") or {}
    comp = (feats.get("components") or {}).get("shape")
    return {
        "reference": True,
        "alpha": ood.get("alpha"),
        "thresholds": ood.get("thresholds"),
        "input_statistics": sorted((stats.get("input_reference") or {}).get("quantiles", {})),
        "features": None if comp is None else f"{comp[1]} features, {comp[0]}-dimensional subspace",
        "embedding_output": embedding,
        "held_out": ood.get("held_out"),
    }


def _range(v):
    """[min, max] of a training statistic, a list of them for per-channel ones, else None."""
    if isinstance(v, dict) and "min" in v:
        return [v["min"], v.get("max")]
    if isinstance(v, list) and v and all(isinstance(x, dict) and "min" in x for x in v):
        return [[x["min"], x.get("max")] for x in v]
    return None


def read_model_info(
    path: str | os.PathLike, *, kind: str | None = None
) -> ModelInfo | GeneratorInfo:
    """Read the metadata of an exported ``.onnx`` model: a classifier's :class:`ModelInfo` or
    a generator's :class:`GeneratorInfo`.

    Uses the ``onnx`` package when installed (reads only the metadata), else ONNX Runtime.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file.
    kind : str, optional
        Require a model of this kind (:data:`KINDS`); default: any.

    Returns
    -------
    ModelInfo or GeneratorInfo

    Raises
    ------
    ainu_engine.errors.InputError
        Missing or unreadable file, a model without ainu-engine metadata, or not of ``kind``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("model file not found", path=path)
    try:
        import onnx
    except ImportError:
        onnx = None
    try:
        if onnx is not None:
            m = onnx.load(path, load_external_data=False)
            props = {p.key: p.value for p in m.metadata_props}
        else:
            from .onnx_session import ort_session

            props = dict(ort_session(path).get_modelmeta().custom_metadata_map)
    except MissingDependency as err:
        raise InputError(
            "reading a model needs onnxruntime or onnx", path=path, hint=install_hint("cpu")
        ) from err
    except Exception as err:  # noqa: BLE001 - protobuf / ORT raise many types
        raise InputError(
            f"cannot read the ONNX model: {str(err).splitlines()[0]}", path=path
        ) from err
    info = model_info_from_metadata(props, path=path)
    if kind is not None:
        require_kind(info, kind)
    return info


def partial_calibration(info: ModelInfo) -> list[dict]:
    """How the model's calls behaved on partial acquisitions of its validation nuclei
    (``metrics["calibration"]["by_fraction"]``, written by ``ainu-engine train``): per acquisition
    fraction a temperature, the accuracy and the share of calls equal to the call on the whole
    acquisition; [] for a model without it.

    Parameters
    ----------
    info : ModelInfo

    Returns
    -------
    list of dict
        Sorted by ``fraction``.
    """
    rows = ((info.metrics or {}).get("calibration") or {}).get("by_fraction") or []
    ok = [r for r in rows if isinstance(r, dict) and "fraction" in r and "temperature" in r]
    return sorted(ok, key=lambda r: float(r["fraction"]))


def at_fraction(rows: list[dict], key: str, fraction: float) -> float | None:
    """``key`` of :func:`partial_calibration`'s rows at ``fraction``, linearly interpolated
    (clamped to the first and last rows); None without rows.

    Examples
    --------
    >>> rows = [{"fraction": 0.1, "temperature": 2.0}, {"fraction": 1.0, "temperature": 1.0}]
    >>> at_fraction(rows, "temperature", 0.55), at_fraction(rows, "temperature", 0.05)
    (1.5, 2.0)
    """
    if not rows:
        return None
    xs = [float(r["fraction"]) for r in rows]
    ys = [float(r[key]) for r in rows]
    return float(np.interp(fraction, xs, ys))


def temperature_of(info: ModelInfo) -> float:
    """The temperature the model's probabilities are computed at.

    Parameters
    ----------
    info : ModelInfo
        A classifier's metadata.

    Returns
    -------
    float
        The one training fitted on its validation split
        (``metrics["calibration"]["temperature"]``), else 1 (the plain softmax). The calls
        (the argmax) do not depend on it.
    """
    t = ((info.metrics or {}).get("calibration") or {}).get("temperature")
    try:
        t = float(t)
    except (TypeError, ValueError):
        return 1.0
    return t if math.isfinite(t) and 0.01 <= t <= 100.0 else 1.0
