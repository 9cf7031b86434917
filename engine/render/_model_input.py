"""The one way a nucleus becomes a model input, for training and for serving alike."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..io import Localizations
from ._patches import extract_patches, scale_channels
from ._render import Rendered, render
from ._spec import RenderSpec

__all__ = ["ModelInput", "model_input", "model_input_from", "patch_mode", "render_spec_for"]


@dataclass
class ModelInput:
    """A nucleus ready for the model.

    Attributes
    ----------
    items : numpy.ndarray
        float32 (P, C, S, S): one image (P = 1) in image mode, the kept patches in patch mode.
    n_localizations : list of int
        Localizations rendered per model channel.
    area_um2 : float
        Nucleus area on the (raw) render's mask.
    rendered : Rendered
        The render the items come from (origin, pixel size and mask map pixels back to nm;
        in patch mode the raw render the patches were cut from).
    seconds : float
        Time taken.
    locs : Localizations or None
        What was rendered: the nucleus after the model's recorded preprocessing (None from
        :func:`model_input_from`, which gets a render).
    preprocess : dict
        :func:`ainu_engine.preprocess.apply_once`'s report ({} without preprocessing).
    """

    items: np.ndarray
    n_localizations: list[int]
    area_um2: float
    rendered: Rendered
    seconds: float = 0.0
    locs: Localizations | None = None
    preprocess: dict = field(default_factory=dict)


def patch_mode(preprocessing: Mapping | None) -> tuple[int | None, float]:
    """(patch size or None in image mode, minimum occupied fraction) of a model's preprocessing.

    Parameters
    ----------
    preprocessing : mapping or None
        A model's preprocessing.

    Returns
    -------
    (int or None, float)
    """
    pre = preprocessing or {}
    size = int(pre["patch_size"]) if pre.get("mode") == "patches" else None
    return size, float(pre.get("min_occupied", 0.75))


def model_input(
    locs: Localizations,
    spec: RenderSpec,
    preprocessing: Mapping | None = None,
    *,
    device: str = "auto",
    roi_nm=None,
) -> ModelInput:
    """Render one nucleus as the model takes it.

    Parameters
    ----------
    locs : Localizations
        One nucleus.
    spec : RenderSpec
        The model's RenderSpec (in patch mode its ``size`` is ignored: patches are cut from
        the raw render).
    preprocessing : mapping, optional
        The model's preprocessing (:attr:`ainu_engine.model.ModelInfo.preprocessing`):
        ``{"mode": "image"}`` (default: the render, resized, padded and scaled by ``spec``) or
        ``{"mode": "patches", "patch_size": S, "min_occupied": f}`` (S x S patches of the raw
        render more than ``f`` inside the nucleus, each scaled per channel like an image);
        its ``localizations`` (:class:`ainu_engine.preprocess.Preprocess` as a dict: filters,
        drift correction, linking) are applied to ``locs`` first
        (:func:`ainu_engine.preprocess.apply_once`).
    device : {"auto", "cpu", "cuda"}
        Where the KDE runs.
    roi_nm : array (V, 2), optional
        Nucleus outline in nm (else the mask comes from the localizations).

    Returns
    -------
    ModelInput

    Raises
    ------
    ainu_engine.errors.InputError
        Patch mode, and no patch is occupied enough; or the model's recorded preprocessing
        cannot run on the table (:func:`ainu_engine.preprocess.apply_once`).
    ainu_engine.errors.RenderError
        Nothing to render (see :func:`~ainu_engine.render.render`).

    Notes
    -----
    Training (``ainu_engine.training.data``) and serving (:class:`ainu_engine.Classifier`)
    both call this function, so a model sees at screening time exactly what it was trained on.
    """
    from ..preprocess import Preprocess, apply_once

    t0 = time.perf_counter()
    locs, report = apply_once(locs, Preprocess.of_model(preprocessing))
    r = render(locs, render_spec_for(spec, preprocessing), device=device, roi_nm=roi_nm)
    m = model_input_from(r, spec, preprocessing, path=locs.meta.source_path, t0=t0)
    m.locs, m.preprocess = locs, report
    return m


def render_spec_for(spec: RenderSpec, preprocessing: Mapping | None) -> RenderSpec:
    """The RenderSpec a nucleus is rendered with for the model: ``spec``, or its raw render in
    patch mode.

    Parameters
    ----------
    spec : RenderSpec
        The model's spec.
    preprocessing : mapping or None
        The model's preprocessing.

    Returns
    -------
    RenderSpec
    """
    return spec.raw() if patch_mode(preprocessing)[0] else spec


def model_input_from(
    r: Rendered,
    spec: RenderSpec,
    preprocessing: Mapping | None = None,
    *,
    path=None,
    t0: float | None = None,
) -> ModelInput:
    """The model input of a nucleus already rendered with :func:`render_spec_for` (the image,
    or the occupied patches of the raw render, scaled). :func:`model_input` and live sessions
    (:mod:`ainu_engine.live`) share it.

    Parameters
    ----------
    r : Rendered
        The nucleus rendered with :func:`render_spec_for`'s spec.
    spec : RenderSpec
        The model's spec.
    preprocessing : mapping, optional
        The model's preprocessing (image or patch mode).
    path : str, optional
        The file, named in errors.
    t0 : float, optional
        ``perf_counter`` at the start, for the timing.

    Returns
    -------
    ModelInput
    """
    t0 = time.perf_counter() if t0 is None else t0
    patch_size, min_occupied = patch_mode(preprocessing)
    if patch_size:
        patches = extract_patches(r, patch_size, min_occupied=min_occupied)
        if not patches:
            raise InputError(
                f"no {patch_size}x{patch_size} patch is more than {min_occupied:.0%} occupied",
                path=path,
                hint="use smaller patches or a higher magnification",
            )
        items = np.stack([scale_channels(p.image, spec.scaling, spec.percentile) for p in patches])
    else:
        items = r.image[None]
    counts = [int(r.n_localizations.get(k, 0)) for k in range(spec.n_channels)]
    return ModelInput(
        np.ascontiguousarray(items, np.float32),
        counts,
        float(r.area_um2),
        r,
        time.perf_counter() - t0,
    )
