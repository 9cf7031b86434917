"""Render the nuclei of localization files into image files (what ``ainu-engine render`` runs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ._channels import describe_channels, file_channels, match_channels, select_channels
from ._export import IMAGE_FORMATS, write_rendered
from ._render import render
from ._sklearn import render_sklearn
from ._spec import RenderSpec

__all__ = ["output_stems", "render_files"]


def output_stems(files: Sequence[Path]) -> dict[Path, str]:
    """Output names: the file's stem, or — where two inputs share one — the stem prefixed with
    the names of their parent folders until they differ (never one image over another).

    Parameters
    ----------
    files : sequence of Path
        The inputs.

    Returns
    -------
    dict of Path to str

    Examples
    --------
    >>> sorted(output_stems([Path("a/x.csv"), Path("b/x.csv")]).values())
    ['a_x', 'b_x']
    """
    out = {f: f.stem for f in files}
    for depth in range(1, 8):
        seen: dict[str, list[Path]] = {}
        for f, s in out.items():
            seen.setdefault(s, []).append(f)
        clashes = [fs for fs in seen.values() if len(fs) > 1]
        if not clashes:
            return out
        for fs in clashes:
            for f in fs:
                parents = [p.name for p in f.resolve().parents][:depth][::-1]
                out[f] = "_".join([*parents, f.stem])
    for k, f in enumerate(files):  # identical paths up the tree: number them
        out[f] = f"{out[f]}_{k}"
    return out


def _file_spec(locs, spec: RenderSpec, channels, model_channels, channel_map, warn, path):
    """``spec`` for one file: the model's channels matched by name, the ``channels`` asked for
    (ids or names), or — neither given — all channels in one image, with a warning where the
    file has several."""
    if model_channels is not None:
        return match_channels(locs, spec, model_channels, channel_map)
    if channels:
        return replace(spec, channels=select_channels(locs, channels))
    chans = file_channels(locs)
    if len(chans) > 1:
        warn(
            f"{path}: channels {describe_channels(chans)} rendered into one image "
            "(--channels picks them, e.g. --channels " + ",".join(map(str, chans)) + ")"
        )
    return spec


def render_files(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    spec: RenderSpec,
    *,
    channels: Sequence[str] | None = None,
    model_channels: Sequence[str] | None = None,
    channel_map: dict | None = None,
    nuclei: str = "auto",
    roi: str | os.PathLike | None = None,
    camera_pixel_nm: float | None = None,
    device: str = "auto",
    method: str = "kde",
    image_format: str = "tiff",
    force: bool = False,
    reading: dict | None = None,
    on_image: Callable[[dict], None] | None = None,
    on_file: Callable[[], None] | None = None,
    on_error: Callable[[Exception, Path], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[dict]:
    """Render every nucleus of ``files`` by a Gaussian KDE into ``out/NAME.{tiff,npy,png}``
    with a JSON sidecar (the RenderSpec, origin, pixel size, area, source).

    Parameters
    ----------
    files : sequence of path
        Localization files (:func:`ainu_engine.nuclei.expand_inputs` expands folders, globs
        and manifests first).
    out : path
        The output folder (created).
    spec : RenderSpec
        How to render (its ``channels`` are replaced per file).
    channels : sequence of str, optional
        File channel ids or names to render (one image channel each); default all in one.
    model_channels : sequence of str, optional
        Render as a model sees its input: its channels matched by name in each file.
    channel_map : dict, optional
        Model channel -> file channel, where the files name them otherwise (with
        ``model_channels``).
    nuclei : str, default "auto"
        How a file splits into nuclei (:data:`ainu_engine.nuclei.NUCLEI_MODES`).
    roi : path, optional
        An ImageJ ROI set (camera pixels): one image per ROI.
    camera_pixel_nm : float, optional
        The camera pixel of the ROI set (and of files that do not record theirs).
    device : {"auto", "cpu", "cuda"}
        Where to render (a fallback is reported through ``on_warning``).
    method : {"kde", "sklearn"}
        The engine's KDE, or scikit-learn's (the paper's slow computation; raw renders only).
    image_format : str, default "tiff"
        One of :data:`ainu_engine.render.IMAGE_FORMATS`.
    force : bool
        Replace existing images (else an existing one is an error for that file).
    reading : dict, optional
        Keyword arguments of :func:`ainu_engine.io.read`.
    on_image, on_file, on_error, on_warning : callable, optional
        Called with each image's record, after each file, with ``(error, path)`` for a file
        that failed (default: raise), and with each warning.

    Returns
    -------
    list of dict
        One record per image written: input, nucleus, image, sidecar, shape, pixel_nm,
        origin_nm, area_um2, device, seconds.

    Raises
    ------
    ValueError
        An unknown ``image_format``, ``method`` or ``nuclei`` mode, or sklearn with a resized
        ``spec``.
    ainu_engine.errors.AinuError
        A file fails and no ``on_error`` is given.

    Examples
    --------
    >>> import tempfile
    >>> from ainu_engine.render import RenderSpec, render_files
    >>> spec = RenderSpec(pixel_nm=20, sigma_nm=20, size=128)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     recs = render_files(["examples/data/nucleus_insight3.bin"], out, spec,
    ...                         channels=["1"], reading={"camera_pixel_nm": 160})
    >>> [(r["shape"], r["image"].endswith(".tiff")) for r in recs]
    [([1, 128, 128], True)]
    """
    from ..io import read
    from ..nuclei import NUCLEI_MODES

    for name, value, ok in (("image_format", image_format, IMAGE_FORMATS),
                            ("method", method, ("kde", "sklearn")),
                            ("nuclei", nuclei, NUCLEI_MODES)):  # fmt: skip
        if value not in ok:
            raise ValueError(f"{name} must be one of {', '.join(ok)}, got {value!r}")
    if method == "sklearn" and spec.size != 0:
        raise ValueError("method sklearn writes raw renders: use size 0")
    files = [Path(f) for f in files]
    stems, out = output_stems(files), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    warn = on_warning or (lambda message: None)
    noted, records = [], []
    for path in files:
        try:
            locs = read(path, **(reading or {}), keep_extra=True)
            file_spec = _file_spec(locs, spec, channels, model_channels, channel_map, warn, path)
            for rec in _render_nuclei(locs, path, file_spec, out / stems[path], noted, warn,
                                      nuclei=nuclei, roi=roi, cam=camera_pixel_nm, device=device,
                                      method=method, image_format=image_format,
                                      force=force):  # fmt: skip
                records.append(rec)
                if on_image is not None:
                    on_image(rec)
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
            if on_error is None:
                raise
            on_error(err, path)
        if on_file is not None:
            on_file()
    return records


def _render_nuclei(locs, path, spec, stem0, noted, warn, *, nuclei, roi, cam, device, method,
                   image_format, force):  # fmt: skip
    """Render and write each nucleus of one file; yields the records."""
    from ..errors import OutputError
    from ..nuclei import split_nuclei

    mode = "roi" if roi is not None and nuclei == "auto" else nuclei
    for n in split_nuclei(locs, mode=mode, roi_path=roi, camera_pixel_nm=cam):
        name = str(n.id) if n.id else None
        suffix = f"_{name}" if name else ""
        stem = stem0.with_name(stem0.name + suffix)
        target = stem.with_name(stem.name + "." + image_format)
        if target.exists() and not force:
            raise OutputError("exists already", path=target, hint="pass --force to replace it")
        if method == "sklearn":
            r = render_sklearn(n.locs, spec)
        else:
            r = render(n.locs, spec, device=device, roi_nm=n.roi_nm)
        if r.device_note and not noted:
            warn(r.device_note)
            noted.append(True)
        label = f"{path} {name}" if name else str(path)
        for w in r.warnings:
            warn(f"{label}: {w}")
        outline = None if n.outline is None else [
            [round(float(a), 1), round(float(b), 1)] for a, b in n.outline
        ]  # fmt: skip
        image, sidecar = write_rendered(
            r, stem, image_format,
            extra={"source": str(path), "nucleus": name, "method": method,
                   "cut_by_edge": n.at_edge, "outline_nm": outline},
        )  # fmt: skip
        yield {
            "input": str(path), "nucleus": name, "image": str(image),
            "sidecar": str(sidecar), "shape": list(r.image.shape), "pixel_nm": r.pixel_nm,
            "origin_nm": list(r.origin_nm), "area_um2": round(r.area_um2, 3),
            "device": r.device, "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
        }  # fmt: skip
