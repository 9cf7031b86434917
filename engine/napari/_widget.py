"""napari widget: classify the nucleus of a points layer with a chosen model and show the call
and the occlusion map as layers. :func:`classify_points` does the work without Qt (tested so);
:func:`make_classify_widget` makes the widget napari shows (magicgui, Qt)."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._reader import META_KEY

__all__ = [
    "NucleusCall",
    "classify_points",
    "make_classify_widget",
    "points_to_localizations",
    "same_file_points",
]

_CLASSIFIERS: dict = {}


@dataclass
class NucleusCall:
    """What :func:`classify_points` found: the call and the layers that show it."""

    label: str
    probabilities: dict[str, float]
    qc: list[str]
    layers: list[tuple]  #: napari layer data tuples (the model input, the occlusion map)
    ood_score: float | None = None  #: how unlike the training nuclei (above 1: unfamiliar)
    ood_reason: str | None = None  #: what is furthest out

    @property
    def text(self) -> str:
        p = self.probabilities.get(self.label, max(self.probabilities.values()))
        qc = ", ".join(self.qc) or "QC ok"
        text = f"{self.label} (p = {p:.2f}; {qc}"
        if self.ood_score is None:
            return text + "; no out-of-distribution reference in this model)"
        text += f"; OOD score {self.ood_score:.2f}"
        if "unfamiliar" in self.qc:
            text += f": unlike the training nuclei, {self.ood_reason}"
        return text + ")"


def _world(layer) -> np.ndarray:
    """(N, 2) (y, x) in nm of a points layer's points, with its scale and translation."""
    data = np.asarray(layer.data, float)[:, -2:]
    scale = np.asarray(getattr(layer, "scale", (1.0, 1.0)), float)[-2:]
    shift = np.asarray(getattr(layer, "translate", (0.0, 0.0)), float)[-2:]
    return data * scale + shift


def points_to_localizations(layers):
    """One :class:`~ainu_engine.io.Localizations` of points layers (one a channel, as the
    reader makes them: the channel's id and the file's name for it in the layer's metadata;
    a layer made otherwise is channel k, named as the layer)."""
    from ..io import Localizations, Metadata

    xs, ys, cs, names = [], [], [], {}
    for k, layer in enumerate(layers):
        meta = (getattr(layer, "metadata", None) or {}).get(META_KEY, {})
        cid = int(meta.get("channel", k))
        if meta.get("channel_name"):  # the file's name of the channel (else it goes by id)
            names[cid] = str(meta["channel_name"])
        elif not meta:  # a layer the reader did not make: its name is the channel's
            names[cid] = str(getattr(layer, "name", "") or cid)
        yx = _world(layer)
        ys.append(yx[:, 0])
        xs.append(yx[:, 1])
        cs.append(np.full(len(yx), cid, np.int32))
    if not xs or not sum(map(len, xs)):
        raise ValueError("the points layer has no points")
    source = next((((getattr(L, "metadata", None) or {}).get(META_KEY) or {}).get("source")
                   for L in layers), None)  # fmt: skip
    return Localizations(np.concatenate(xs), np.concatenate(ys), channel=np.concatenate(cs),
                         meta=Metadata(source_format="napari", source_path=source,
                                       channel_names=names))  # fmt: skip


def _classifier(model: Path, device: str):
    from .._classifier import Classifier

    key = (str(Path(model).resolve()), os.path.getmtime(model), device)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()  # one model at a time
        _CLASSIFIERS[key] = Classifier.load(model, device=device, render_device="cpu")
    return _CLASSIFIERS[key]


def classify_points(layers, model: str | os.PathLike, *, explain: bool = True,
                    device: str = "cpu") -> NucleusCall:  # fmt: skip
    """Classify the nucleus of ``layers`` (points layers, or objects with ``data`` (N, 2) (y, x)
    in nm and optional ``scale``, ``translate``, ``metadata``) with ``model``; with ``explain``,
    its occlusion map. Returns the call and the layers to add: the model input and the map,
    both placed on the nucleus in nm."""
    from ..explain import ATTRIBUTION_CMAP, default_window, occlusion

    clf = _classifier(Path(model), device)
    locs = points_to_localizations(list(layers))
    prep = clf.prepare(locs)
    (pred,) = clf.predict_prepared([prep])
    r = prep.rendered
    p = float(r.pixel_nm)
    place = {"scale": (p, p), "translate": (r.origin_nm[1] + p / 2, r.origin_nm[0] + p / 2)}
    img = prep.items[0]
    names = list(clf.info.channel_names)
    out = [
        (img[k], {"name": f"model input {c} ({pred.label})", "colormap": "gray",
                  "blending": "additive", **place}, "image")
        for k, c in enumerate(names)
    ]  # fmt: skip
    if explain and prep.items.shape[0] == 1:
        window, stride = default_window(clf.info.input_size)
        classes = list(clf.info.classes)
        a = occlusion(clf, img, window=window, stride=stride, target=classes.index(pred.label))
        amap = a.maps[0]
        lim = float(np.abs(amap).max()) or 1.0
        out.append((
            amap,
            {"name": f"occlusion {pred.label} (blue = for, red = against)",
             "colormap": ATTRIBUTION_CMAP, "contrast_limits": (-lim, lim), "opacity": 0.6,
             "metadata": {META_KEY: {"call": pred.label, "probabilities": pred.probabilities,
                                     "window": window, "stride": stride}}, **place},
            "image",
        ))  # fmt: skip
    return NucleusCall(pred.label, dict(pred.probabilities), list(pred.qc), out,
                       pred.ood_score, pred.ood_reason)  # fmt: skip


def make_classify_widget():
    """The widget napari shows (npe2 ``widgets`` contribution): a magicgui form over a points
    layer, a model file and whether to explain; the call goes to napari's notifications and
    into the new layers' names."""
    import napari
    from magicgui import magicgui

    def classify_nucleus(
        points: napari.layers.Points,
        model: Path = Path("model.onnx"),
        explain: bool = True,
        viewer: napari.viewer.Viewer = None,
    ) -> list[napari.types.LayerDataTuple]:
        layers = same_file_points(points, [] if viewer is None else list(viewer.layers))
        call = classify_points(layers, model, explain=explain)
        napari.utils.notifications.show_info(f"{points.name}: {call.text}")
        widget.call.value = call.text
        return call.layers

    widget = magicgui(
        classify_nucleus,
        call_button="Classify",
        model={"label": "model (.onnx)", "filter": "*.onnx"},
    )
    from magicgui.widgets import Label

    widget.call = Label(value="")
    widget.append(widget.call)
    return widget


def same_file_points(points, layers: list) -> list:
    """``points`` and the other points layers the reader made of the same file (the other
    channels of the nucleus), in the viewer's order."""
    src = ((getattr(points, "metadata", None) or {}).get(META_KEY) or {}).get("source")
    if not src:
        return [points]
    same = [
        L
        for L in layers
        if type(L).__name__ == "Points"
        and ((getattr(L, "metadata", None) or {}).get(META_KEY) or {}).get("source") == src
    ]
    return same or [points]  # fmt: skip
