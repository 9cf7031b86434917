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

from .errors import InputError
from .render import RenderSpec

__all__ = ["ModelInfo", "read_model_info", "temperature_of", "METADATA_VERSION"]

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

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        return ("batch", self.n_channels, self.input_size, self.input_size)

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
    return pre


def _range(v):
    """[min, max] of a training statistic, a list of them for per-channel ones, else None."""
    if isinstance(v, dict) and "min" in v:
        return [v["min"], v.get("max")]
    if isinstance(v, list) and v and all(isinstance(x, dict) and "min" in x for x in v):
        return [[x["min"], x.get("max")] for x in v]
    return None


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read the :class:`ModelInfo` of an exported ``.onnx`` model.

    Uses the ``onnx`` package when installed (reads only the metadata), else ONNX Runtime.

    Raises
    ------
    ainu_engine.errors.InputError
        Missing or unreadable file, or a model without ainu-engine metadata.
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
            import onnxruntime as ort

            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            props = dict(sess.get_modelmeta().custom_metadata_map)
    except ImportError as err:
        raise InputError(
            "reading a model needs onnxruntime or onnx",
            path=path,
            hint='pip install "ainu-engine[cpu]"',
        ) from err
    except Exception as err:  # noqa: BLE001 - protobuf / ORT raise many types
        raise InputError(
            f"cannot read the ONNX model: {str(err).splitlines()[0]}", path=path
        ) from err
    return ModelInfo.from_metadata(props, path=path)


def temperature_of(info: ModelInfo) -> float:
    """The temperature the model's probabilities are computed at: the one training fitted on
    its validation split (``metrics["calibration"]["temperature"]``), else 1 (the plain
    softmax). The calls (the argmax) do not depend on it."""
    t = ((info.metrics or {}).get("calibration") or {}).get("temperature")
    try:
        t = float(t)
    except (TypeError, ValueError):
        return 1.0
    return t if math.isfinite(t) and 0.01 <= t <= 100.0 else 1.0
