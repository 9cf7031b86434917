"""Training data: a manifest of labelled files, rendered once through ``ainu_engine.render`` into an
on-disk cache keyed by the file's content and the RenderSpec, so epochs and folds never re-render.

A manifest is a CSV with a header: ``path`` (a localization file in any format ``ainu_engine.io``
reads, or an already rendered ``.tif``/``.tiff``/``.npy`` image of shape (C, S, S)), ``label``,
and optionally ``group`` (cell line, donor, slide: splits keep a group on one side) and
``channels`` (channel names joined by ``+``, e.g. ``polII+h3``). Relative paths are relative to
the manifest's folder. ``ainu-engine simulate`` writes such a manifest. One row is one nucleus.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ainu_engine.errors import InputError, MissingColumnError
from ainu_engine.io import file_sha256
from ainu_engine.render import RenderSpec

__all__ = [
    "Manifest",
    "read_manifest",
    "RenderCache",
    "NucleusSet",
    "load_nuclei",
    "expand_nuclei",
    "nuclei_record",
    "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".npy")


@dataclass(frozen=True)
class Manifest:
    """Rows of a manifest: files, labels, optional groups; ``classes`` in index order.

    Attributes
    ----------
    files : tuple[Path, ...]
        The data files.
    labels : tuple[str, ...]
        Each file's class.
    classes : tuple[str, ...]
        The classes in index order.
    groups : tuple[str, ...] | None
        Each file's group (slide, donor), or None.
    channel_names : tuple[str, ...] | None
        The model's channel names: the names every file's channels share, or — with per-file
        channel maps — the ones chosen (``proteins``), or None.
    path : Path | None
        The manifest.
    sha256 : str
        Its SHA-256.
    channel_maps : tuple[dict, ...] | None
        Per file: model channel (e.g. a protein) -> the file's channel (name or id), from a
        ``channels`` column of ``NAME=CHANNEL`` pairs (``cpla2=647;5lo=561``); None without.
    nucleus_ids : tuple[str, ...] | None
        Rows that are nuclei of fields (:func:`expand_nuclei`): each row's nucleus id in its
        file; None: a row is a whole file.
    nuclei : tuple | None
        How the fields were split: ``(mode, area_limits_um2)`` of
        :func:`ainu_engine.nuclei.split_nuclei`.
    """

    files: tuple[Path, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    channel_names: tuple[str, ...] | None = None
    path: Path | None = None
    sha256: str = ""
    channel_maps: tuple[dict, ...] | None = None
    nucleus_ids: tuple[str, ...] | None = None
    nuclei: tuple | None = None

    def __len__(self) -> int:
        return len(self.files)

    def item_name(self, row: int) -> str:
        """The row's file, with ``#NUCLEUS`` where it is a nucleus of a field.

        Parameters
        ----------
        row : int
            A row.

        Returns
        -------
        str
        """
        nid = self.nucleus_ids[row] if self.nucleus_ids else None
        return f"{self.files[row]}#{nid}" if nid else str(self.files[row])

    @property
    def y(self) -> np.ndarray:
        """Integer labels (index into ``classes``)."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[v] for v in self.labels], dtype=np.int64)

    @classmethod
    def from_rows(
        cls,
        files: Sequence,
        labels: Sequence[str],
        *,
        groups: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
    ) -> Manifest:
        """A manifest from Python lists (classes sorted unless given)."""
        labels = tuple(str(v) for v in labels)
        cls_ = tuple(classes) if classes is not None else tuple(sorted(set(labels)))
        unknown = sorted(set(labels) - set(cls_))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {list(cls_)}")
        h = hashlib.sha256(
            json.dumps([list(map(str, files)), labels, list(groups or [])]).encode()
        ).hexdigest()
        return cls(
            tuple(Path(f) for f in files),
            labels,
            cls_,
            None if groups is None else tuple(str(g) for g in groups),
            None,
            None,
            h,
        )


def read_manifest(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
) -> Manifest:
    """Read a manifest CSV (``path``, ``label``, optional ``group`` and ``channels``).

    ``channels`` holds either the channel names every file shares, joined by ``+``
    (``polII+h3``), or per file a channel map of ``NAME=CHANNEL`` pairs joined by ``;``
    (``cpla2=647;5lo=561``): the same protein imaged in different channels in different files.

    Parameters
    ----------
    path : path
        The CSV file.
    classes : sequence of str, optional
        Class order (e.g. a model's); default the sorted labels.
    channels : sequence of str, optional
        With per-file channel maps: the names the model takes (e.g. ``["cpla2"]``); every row's
        map must name them. Default: the one name every map has, when there is one.

    Returns
    -------
    Manifest

    Raises
    ------
    ainu_engine.errors.InputError
        Missing column, empty label or path, a listed file that does not exist (the first
        one is named, with its line), fewer than two classes, a label outside ``classes``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ainu_engine.training.data import read_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("a.bin", "b.bin"): _ = (d / n).write_bytes(b"")
    >>> _ = (d / "m.csv").write_text("path,label\\na.bin,hiPSC\\nb.bin,somatic\\n")
    >>> read_manifest(d / "m.csv").classes
    ('hiPSC', 'somatic')
    """
    import pyarrow as pa
    from pyarrow import csv

    path = Path(path)
    if not path.is_file():
        raise InputError("manifest not found", path=path)
    raw = path.read_bytes()
    try:
        table = csv.read_csv(
            pa.py_buffer(raw),
            convert_options=csv.ConvertOptions(
                column_types={}, strings_can_be_null=False, auto_dict_encode=False
            ),
            read_options=csv.ReadOptions(autogenerate_column_names=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"not a readable CSV: {str(err).splitlines()[0]}", path=path) from err
    cols = {c.strip().lower(): c for c in table.column_names}
    for need in ("path", "label"):
        if need not in cols:
            raise MissingColumnError(
                f"no '{need}' column",
                path=path,
                expected="columns path,label[,group]",
                found=", ".join(table.column_names) or "none",
            )

    def column(name):
        return [("" if v is None else str(v)).strip() for v in table.column(cols[name]).to_pylist()]

    files, labels = column("path"), column("label")
    groups = column("group") if "group" in cols else None
    base = path.parent
    resolved = []
    for i, (f, lab) in enumerate(zip(files, labels, strict=True)):
        line = f"line {i + 2}"
        if not f or not lab:
            raise InputError(f"empty {'path' if not f else 'label'}", path=path, where=line)
        p = Path(f) if Path(f).is_absolute() else base / f
        if not p.exists():
            raise InputError(
                f"listed file {f!r} does not exist",
                path=path,
                where=line,
                hint="paths are relative to the manifest's folder",
            )
        resolved.append(p)
    if groups is not None and any(not g for g in groups):
        i = next(i for i, g in enumerate(groups) if not g)
        raise InputError(
            "empty group (leave the column out, or fill every row)",
            path=path,
            where=f"line {i + 2}",
        )
    present = sorted(set(labels))
    cls_ = tuple(classes) if classes is not None else tuple(present)
    unknown = [v for v in present if v not in cls_]
    if unknown:
        raise InputError(
            f"labels {unknown} are not among the model's classes {list(cls_)}", path=path
        )
    if classes is None and len(cls_) < 2:
        raise InputError(
            "a manifest for training needs at least two classes",
            path=path,
            found=f"only {present!r}",
        )
    names, maps = None, None
    if "channels" in cols and any("=" in v for v in column("channels")):
        names, maps = _channel_maps(column("channels"), channels, path)
    elif "channels" in cols:
        distinct = set(column("channels"))
        if len(distinct) == 1 and "" not in distinct:
            names = tuple(distinct.pop().split("+"))
    return Manifest(
        tuple(resolved),
        tuple(labels),
        cls_,
        None if groups is None else tuple(groups),
        names,
        path,
        hashlib.sha256(raw).hexdigest(),
        maps,
    )



def _channel_maps(values: list[str], wanted, path) -> tuple[tuple[str, ...], tuple[dict, ...]]:
    """The model's channel names and every row's map (only those names) of a ``channels``
    column of ``NAME=CHANNEL`` pairs; a row without a name the model needs is an error naming
    both lists."""
    from ainu_engine.render import parse_row_channels

    maps = []
    for i, v in enumerate(values):
        try:
            m = parse_row_channels(v)
        except ValueError as err:
            raise InputError(f"channels: {err}", path=path, where=f"line {i + 2}") from err
        if not m:
            raise InputError("empty channel map (every row names its channels)", path=path,
                             where=f"line {i + 2}", expected="e.g. cpla2=647;5lo=561")  # fmt: skip
        maps.append(m)
    if wanted:
        names = tuple(str(w).strip() for w in wanted)
    else:
        common = set(maps[0]).intersection(*maps[1:])
        if len(common) != 1:
            raise InputError(
                f"the rows' channel maps name {sorted(set().union(*maps))}: say which the model "
                "takes",
                path=path,
                hint="--channels NAME[,NAME] (train), channels=[...] (Python)",
            )
        names = tuple(common)
    for i, m in enumerate(maps):
        missing = [n for n in names if n not in m]
        if missing:
            raise InputError(
                f"the channel map names {sorted(m)}; the model takes {list(names)}",
                path=path,
                where=f"line {i + 2}",
                found=f"no {', '.join(missing)}",
            )
    return names, tuple({n: m[n] for n in names} for m in maps)

class RenderCache:
    """Rendered nuclei on disk, keyed by file content hash + RenderSpec (+ patch settings).

    Each entry is ``KEY.npy`` (float32, (C, S, S) or (P, C, S, S) for patches) and
    ``KEY.json`` (localizations per channel, area, source). Writes are atomic, so an
    interrupted run leaves no half entry; a second run, fold or epoch reads the cache.

    Parameters
    ----------
    root : path
        Cache folder (created). ``ainu-engine train`` uses ``~/.cache/ainu-engine/renders``
        unless ``--cache`` says otherwise (``AINU_CACHE_DIR`` moves the whole cache).
    device : {"auto", "cpu", "cuda"}
        Where ``ainu_engine.render`` runs.
    camera_pixel_nm : float, optional
        For files in camera pixels that do not record their pixel size.
    read_options : dict, optional
        More keywords for :func:`ainu_engine.io.read` (``format``, ``columns``, ``unit``...).
    channel_names, channel_map : optional
        The model's channel names and a model channel -> file channel map: each file's channels
        are matched to them (:func:`ainu_engine.render.match_channels`); a file whose channels
        do not match is an error, never a silent merge. Without ``channel_names`` (training) a
        RenderSpec without channel ids takes single-channel files only.
    channel_option : str
        The option named in a channel mismatch's hint (``--channels`` for train,
        ``--channel-map`` for evaluate).
    preprocess : Preprocess, optional
        The preprocessing of each nucleus before it is rendered
        (:class:`ainu_engine.preprocess.Preprocess`; part of the key): the model records it,
        and every call applies it the same way (:func:`ainu_engine.render.model_input`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        device: str = "auto",
        camera_pixel_nm: float | None = None,
        read_options: dict | None = None,
        channel_names=None,
        channel_map: dict | None = None,
        channel_option: str = "--channels",
        preprocess=None,
    ) -> None:
        self.root = Path(root)
        self.preprocess = None if preprocess is None or preprocess.empty else preprocess
        self.root.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.camera_pixel_nm = camera_pixel_nm
        self.read_options = {k: v for k, v in (read_options or {}).items() if v is not None}
        self.channel_names = tuple(channel_names) if channel_names else None
        self.channel_map = dict(channel_map) if channel_map else None
        self.channel_option = channel_option
        # shared by with_channels' copies: a manifest of per-row maps renders through copies
        self._counts = {"hits": 0, "misses": 0}
        self.device_note: str | None = None
        self._hashes: dict[tuple, str] = {}
        # the last field split into its nuclei (shared by with_channels' copies): the cells of a
        # field come one after the other, and each would read and split the file again
        self._field: dict = {}

    @property
    def hits(self) -> int:
        """Renders read from the cache."""
        return self._counts["hits"]

    @property
    def misses(self) -> int:
        """Renders made (and cached)."""
        return self._counts["misses"]

    def with_channels(self, channel_names, channel_map: dict | None) -> RenderCache:
        """This cache (the same folder and file hashes) with other model channel names and a
        channel map: one manifest row's (its key includes them).

        Parameters
        ----------
        channel_names : sequence of str
            The model's channel names.
        channel_map : dict or None
            Model channel -> the row's file channel.

        Returns
        -------
        RenderCache
        """
        import copy

        other = copy.copy(self)
        other.channel_names = tuple(channel_names) if channel_names else None
        other.channel_map = dict(channel_map) if channel_map else None
        return other

    def with_preprocess(self, preprocess) -> RenderCache:
        """This cache (the same folder and file hashes) with another preprocessing.

        Parameters
        ----------
        preprocess : Preprocess or None

        Returns
        -------
        RenderCache
        """
        import copy

        other = copy.copy(self)
        other.preprocess = None if preprocess is None or preprocess.empty else preprocess
        return other

    def preprocessing(self, patch_size: int | None = None, min_occupied: float = 0.75):
        """The model preprocessing :func:`ainu_engine.render.model_input` renders with: patch
        mode, and this cache's localization preprocessing (None: an image, as read).

        Parameters
        ----------
        patch_size : int, optional
        min_occupied : float

        Returns
        -------
        dict or None
        """
        pre = ({"mode": "patches", "patch_size": patch_size, "min_occupied": min_occupied}
               if patch_size else None)  # fmt: skip
        if self.preprocess is not None:
            pre = {**(pre or {"mode": "image"}), "localizations": self.preprocess.to_dict()}
        return pre

    def key(
        self,
        path: Path,
        spec: RenderSpec,
        patch_size: int | None = None,
        min_occupied: float = 0.75,
        nucleus: tuple | None = None,
    ) -> str:
        st = path.stat()
        hk = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if hk not in self._hashes:
            self._hashes[hk] = file_sha256(path)
        mode = "image" if not patch_size else f"patches-{patch_size}-{min_occupied}"
        from ainu_engine.ood import STATISTICS_VERSION

        # the stats stored beside a render include the input statistics: their version too
        parts = [self._hashes[hk], spec.to_json(), mode, f"camera={self.camera_pixel_nm}",
                 f"input-statistics={STATISTICS_VERSION}"]  # fmt: skip
        if self.read_options or self.channel_map or self.channel_names:
            extra = [sorted(self.read_options.items()), self.channel_map, self.channel_names]
            parts.append(json.dumps(extra, sort_keys=True, default=str))
        if nucleus is not None:
            parts.append(json.dumps(["nucleus", *nucleus], default=str))
        if self.preprocess is not None:
            parts.append(json.dumps(["preprocess", self.preprocess.to_dict()], sort_keys=True))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def get(
        self,
        path: str | os.PathLike,
        spec: RenderSpec,
        *,
        patch_size: int | None = None,
        min_occupied: float = 0.75,
        nucleus: tuple | None = None,
    ) -> tuple[np.ndarray, dict]:
        """The rendered image (C, S, S) — or patches (P, C, S, S) — of one file, and its stats.

        Parameters
        ----------
        path : str or os.PathLike
            A localization file (or an image).
        spec : RenderSpec
            How to render.
        patch_size, min_occupied
            Patch mode.
        nucleus : (mode, area_limits_um2, id), optional
            Render one nucleus of the file (:func:`ainu_engine.nuclei.split_nuclei`), not the
            whole file.

        Returns
        -------
        (ndarray, dict)
        """
        path = Path(path)
        key = self.key(path, spec, patch_size, min_occupied, nucleus)
        npy, meta = self.root / key[:2] / f"{key}.npy", self.root / key[:2] / f"{key}.json"
        if npy.is_file() and meta.is_file():
            self._counts["hits"] += 1
            return np.load(npy, mmap_mode="r"), json.loads(meta.read_text())
        self._counts["misses"] += 1
        img, stats = self._render(path, spec, patch_size, min_occupied, nucleus)
        npy.parent.mkdir(exist_ok=True)
        from ainu_engine.io import atomic_path

        with atomic_path(npy) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, img)
        with atomic_path(meta) as tmp:
            Path(tmp).write_text(json.dumps(stats))
        return img, stats

    def source(self, path: str | os.PathLike, spec: RenderSpec, nucleus: tuple | None = None):
        """What one manifest row renders from: (the nucleus's localizations, the RenderSpec with
        the file's channel ids, its ROI or None) — read again, not from the cache (training with
        localization augmentations renders each epoch's copies from it).

        Parameters
        ----------
        path : str or os.PathLike
            A localization file.
        spec : RenderSpec
            The run's spec.
        nucleus : (mode, area_limits_um2, id), optional
            One nucleus of a field.

        Returns
        -------
        (Localizations, RenderSpec, ndarray or None)
        """
        from ainu_engine.io import read
        from ainu_engine.render import match_channels

        path = Path(path)
        if nucleus is None:
            locs = read(path, **{"camera_pixel_nm": self.camera_pixel_nm, **self.read_options})
            field, roi = locs, None
        else:
            field, (locs, roi) = self._nucleus(path, nucleus)
        names = self.channel_names or [f"ch{c}" for c in (spec.channels or [0])]
        spec = match_channels(field, spec, names, self.channel_map, option=self.channel_option)
        cells = locs.extra.get("cell_id") if locs.extra else None
        if nucleus is None and cells is not None and np.unique(cells).size > 1:
            raise InputError(
                f"{np.unique(cells).size} nuclei (cell_id column) in one manifest row",
                path=path,
                hint="one nucleus per row: split the file first",
            )
        return locs, spec, roi

    def _render(
        self, path: Path, spec: RenderSpec, patch_size, min_occupied, nucleus=None
    ) -> tuple[np.ndarray, dict]:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return _load_image(path, spec, patch_size), {"source": str(path), "rendered": False}
        from ainu_engine.render import model_input

        locs, spec, roi = self.source(path, spec, nucleus)
        m = model_input(locs, spec, self.preprocessing(patch_size, min_occupied),
                        device=self.device, roi_nm=roi)  # fmt: skip
        img = m.items if patch_size else m.items[0]
        r = m.rendered
        if r.device_note:
            self.device_note = r.device_note
        from ainu_engine.ood import model_statistics

        return img, {
            "source": str(path) + (f"#{nucleus[-1]}" if nucleus else ""),
            "rendered": True,
            "n_localizations": m.n_localizations,
            "area_um2": m.area_um2,
            "device": r.device,
            # the out-of-distribution reference's input statistics (ainu_engine.ood), of what
            # the model sees (after the preprocessing)
            "input_statistics": model_statistics(m.locs, spec, area_um2=m.area_um2),
            # the preprocessing's report (resolution estimates, drift left uncorrected)
            "preprocess": m.preprocess,
        }

    def _nucleus(self, path: Path, nucleus: tuple):
        """The field of ``path`` and (localizations, ROI) of one of its nuclei, split as the
        manifest was expanded; the last field read is kept, so its cells read it once."""
        from ainu_engine.io import read
        from ainu_engine.nuclei import split_nuclei

        mode, limits, nid = nucleus
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, mode, limits)
        if self._field.get("key") != key:
            locs = read(path, **{"camera_pixel_nm": self.camera_pixel_nm, **self.read_options})
            found = split_nuclei(locs, mode=mode, camera_pixel_nm=self.camera_pixel_nm,
                                 area_limits_um2=tuple(limits) if limits else None)  # fmt: skip
            self._field.clear()
            self._field.update(key=key, locs=locs, nuclei={n.id: (n.locs, n.roi_nm) for n in found})
        if nid not in self._field["nuclei"]:
            raise InputError(f"no nucleus {nid!r} in the file any more (split {mode})", path=path,
                             hint="expand the manifest again")  # fmt: skip
        return self._field["locs"], self._field["nuclei"][nid]


def _side_nm(spec: RenderSpec) -> float | None:
    """The side of a render in nm (None where the pixel is set by a magnification)."""
    return spec.size * spec.pixel_nm if spec.pixel_nm and spec.size else None


def _load_image(path: Path, spec: RenderSpec, patch_size: int | None) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        img = np.load(path)
    else:
        import tifffile

        img = tifffile.imread(path)
    img = np.asarray(img, np.float32)
    if img.ndim == 2:
        img = img[None]
    side = patch_size or spec.size
    want = (spec.n_channels, side, side)
    if img.shape != want:
        raise InputError(
            f"rendered image is {'x'.join(map(str, img.shape))}",
            path=path,
            expected=f"{'x'.join(map(str, want))} (channels x size x size of the run's RenderSpec)",
            hint="render with the same --size and --channels, or list localization files",
        )
    return img[None] if patch_size else img


@dataclass
class NucleusSet:
    """Rendered training items with their nucleus and label.

    ``images[i]`` is a (C, S, S) float32 array (memory-mapped from the cache), ``y[i]`` its
    class, ``owner[i]`` the manifest row (nucleus) it belongs to — one item per nucleus in
    image mode, one per kept patch in patch mode. ``stats[row]`` holds each nucleus's
    localization counts and area; ``failed`` maps manifest rows that could not be rendered
    to their one-line error.

    Attributes
    ----------
    images : list
        (C, S, S) float32 items (memory-mapped from the cache).
    y : np.ndarray
        Each item's class.
    owner : np.ndarray
        Each item's manifest row (nucleus).
    stats : dict
        Per row: localization counts and area.
    failed : dict
        Rows that could not be rendered, with their message.
    sources : dict
        Row -> (localizations, RenderSpec with the file's channels, ROI), for training with
        localization augmentations (:meth:`augmented_batch`).
    device : str
        Where augmented copies are rendered.
    preprocessing : dict or None
        The model preprocessing augmented copies are rendered with
        (:meth:`RenderCache.preprocessing`).
    """

    images: list = field(default_factory=list)
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stats: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    #: row -> (localizations, RenderSpec with the file's channels, ROI): what augmented copies
    #: are rendered from (:meth:`augmented_batch`; only with localization augmentations)
    sources: dict = field(default_factory=dict)
    device: str = "cpu"
    preprocessing: dict | None = None

    def __len__(self) -> int:
        return len(self.images)

    def items_of(self, rows: np.ndarray) -> np.ndarray:
        """Item indices whose nucleus is in ``rows`` (so patches follow their nucleus)."""
        return np.flatnonzero(np.isin(self.owner, rows))

    def batch(self, idx: Sequence[int]) -> np.ndarray:
        return np.stack([np.asarray(self.images[i]) for i in idx])

    def augmented_batch(self, idx: Sequence[int], cfg, rng: np.random.Generator) -> np.ndarray:
        """Items ``idx`` rendered from augmented copies of their nuclei's localizations
        (:func:`~ainu_engine.training.augment.augment_localizations`), in image mode; an item
        whose nucleus has no source (an image file) is the cached render.

        Parameters
        ----------
        idx : sequence of int
            Items.
        cfg : LocAugmentConfig
            The augmentations.
        rng : numpy.random.Generator
            The random stream (the same seed gives the same batch).

        Returns
        -------
        ndarray, float32 (N, C, S, S)
        """
        from ainu_engine.render import model_input

        from .augment import augment_localizations

        out = []
        for i in idx:
            src = self.sources.get(int(self.owner[i]))
            if src is None:
                out.append(np.asarray(self.images[i]))
                continue
            locs, spec, roi = src
            res = augment_localizations(locs, cfg, rng, roi_nm=roi,
                                        fits_nm=_side_nm(spec))  # fmt: skip
            aug, roi2 = res if roi is not None else (res, None)
            if aug is locs and (roi is None or np.array_equal(roi2, roi)):
                out.append(np.asarray(self.images[i]))  # nothing fired: the cached render
                continue
            try:
                out.append(model_input(aug, spec, self.preprocessing, device=self.device,
                                       roi_nm=roi2).items[0])  # fmt: skip
            except Exception:  # noqa: BLE001 - a copy with too little left renders as the original
                out.append(np.asarray(self.images[i]))
        return np.stack(out).astype(np.float32, copy=False)

    def training_stats(self, rows: Sequence[int] | None = None) -> dict:
        """Ranges (min, 1st and 99th percentile, max) of localizations per channel, nucleus
        area and density over the nuclei ``rows`` — stored in the model for screening QC — and
        the reference of their input statistics (``input_reference``,
        :class:`ainu_engine.ood.StatisticsReference`) for the out-of-distribution score."""
        keys = [r for r in (self.stats if rows is None else rows) if r in self.stats]
        rows_ = [self.stats[r] for r in keys if self.stats[r].get("rendered")]
        if not rows_:
            return {}

        def summary(v):
            v = np.asarray(v, float)
            return {
                "min": float(v.min()),
                "p01": float(np.percentile(v, 1)),
                "p99": float(np.percentile(v, 99)),
                "max": float(v.max()),
            }

        counts = np.array([s["n_localizations"] for s in rows_], float)
        area = np.array([s["area_um2"] for s in rows_], float)
        total = counts.sum(axis=1)
        out = {
            "n_nuclei": len(rows_),
            "localizations_per_channel": [summary(counts[:, k]) for k in range(counts.shape[1])],
            "area_um2": summary(area),
            "density_per_um2": summary(total / np.maximum(area, 1e-9)),
        }
        res = [(s.get("preprocess") or {}).get("resolution") or {} for s in rows_]
        for key in ("nena_nm", "frc_nm"):  # the QC flag poor_resolution compares with these
            v = [r[key] for r in res if r.get(key) is not None]
            if v:
                out.setdefault("resolution", {})[key] = summary(v)
        inputs = [s["input_statistics"] for s in rows_ if s.get("input_statistics")]
        if len(inputs) >= 2:  # renders cached before the reference existed have none
            from ainu_engine.ood import StatisticsReference

            out["input_reference"] = StatisticsReference.from_statistics(inputs).to_dict()
        return out



def nuclei_record(nuclei: tuple) -> dict:
    """How a manifest's fields were split into nuclei (:attr:`Manifest.nuclei`), as the model
    records it (``training_stats["nuclei"]``, read by :func:`ainu_engine.nuclei.detection_limits`):
    the mode and the area limits detection used (the defaults where none were given).

    Parameters
    ----------
    nuclei : (str, (float, float) or None)
        ``(mode, area_limits_um2)``.

    Returns
    -------
    dict
    """
    from ainu_engine.nuclei import MAX_AREA_UM2, MIN_AREA_UM2

    mode, limits = nuclei
    rec: dict = {"mode": mode}
    if mode in ("detect", "auto"):
        lo, hi = limits if limits else (MIN_AREA_UM2, MAX_AREA_UM2)
        rec["area_limits_um2"] = [float(lo), float(hi)]
    return rec


def expand_nuclei(
    manifest: Manifest,
    *,
    mode: str = "detect",
    camera_pixel_nm: float | None = None,
    read_options: dict | None = None,
    area_limits_um2: tuple[float, float] | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> Manifest:
    """The manifest of the nuclei of its files: one row per nucleus, as ``screen`` splits a
    field (``detect``: from the localization density of all channels pooled; ``roi``: the ROI
    set beside a file; ``cell_id``: the column), with its file's label, group and channel map.

    Parameters
    ----------
    manifest : Manifest
        One row per file (a field of several cells).
    mode : {"auto", "cell_id", "roi", "detect"}
        How a file splits (:func:`ainu_engine.nuclei.split_nuclei`).
    camera_pixel_nm : float, optional
        For files and ROI sets in camera pixels.
    read_options : dict, optional
        Keywords of :func:`ainu_engine.io.read`.
    area_limits_um2 : (float, float), optional
        ``detect``: the smallest and largest whole nucleus.
    on_file : callable, optional
        Called with each file and its number of nuclei.

    Returns
    -------
    Manifest
        With :attr:`Manifest.nucleus_ids` and :attr:`Manifest.nuclei`; a file without a
        nucleus contributes no row.

    Raises
    ------
    ainu_engine.errors.AinuError
        A file that cannot be read or split.
    """
    from dataclasses import replace

    from ainu_engine.io import read
    from ainu_engine.nuclei import NUCLEI_MODES, split_nuclei

    if mode not in NUCLEI_MODES or mode == "file":
        raise ValueError(f"mode must be one of auto, cell_id, roi, detect; got {mode!r}")
    keep: list[int] = []
    ids: list[str] = []
    for row, path in enumerate(manifest.files):
        locs = read(path, **{"camera_pixel_nm": camera_pixel_nm, **(read_options or {})})
        found = [n.id for n in split_nuclei(locs, mode=mode, camera_pixel_nm=camera_pixel_nm,
                                            area_limits_um2=area_limits_um2)]  # fmt: skip
        keep += [row] * len(found)
        ids += found
        if on_file is not None:
            on_file(path, len(found))

    def pick(values):
        return None if values is None else tuple(values[r] for r in keep)

    return replace(
        manifest, files=pick(manifest.files), labels=pick(manifest.labels),
        groups=pick(manifest.groups), channel_maps=pick(manifest.channel_maps),
        nucleus_ids=tuple(ids), nuclei=(mode, area_limits_um2),
    )  # fmt: skip

def row_cache(manifest: Manifest, cache: RenderCache, row: int) -> tuple[RenderCache, tuple | None]:
    """The cache for one manifest row (with its own channel map) and its nucleus key (mode,
    area limits, id) where the rows are nuclei of fields."""
    maps, ids = manifest.channel_maps, manifest.nucleus_ids
    rc = cache.with_channels(manifest.channel_names, maps[row]) if maps else cache
    return rc, ((*manifest.nuclei, ids[row]) if ids else None)


def load_nuclei(
    manifest: Manifest,
    spec: RenderSpec,
    cache: RenderCache,
    *,
    patch_size: int | None = None,
    min_occupied: float = 0.75,
    on_item: Callable[[], None] | None = None,
    keep_sources: bool = False,
) -> NucleusSet:
    """Render (or read from the cache) every manifest row.

    A row that fails (unreadable file, no localization in the channels...) is recorded in
    ``failed`` with its one-line message and left out; the rest go on. With per-file channel
    maps (:attr:`Manifest.channel_maps`) each row is rendered with its own. In patch mode a
    nucleus with no patch above ``min_occupied`` is recorded as failed too.

    Parameters
    ----------
    manifest : Manifest
        The rows.
    spec : RenderSpec
        How to render.
    cache : RenderCache
        The render cache.
    patch_size : int, optional
        Patch mode's patch side.
    min_occupied : float
        Patch mode's occupancy.
    on_item : callable, optional
        Called after each row.
    keep_sources : bool
        Also keep each nucleus's localizations (:attr:`NucleusSet.sources`), for training with
        localization augmentations (read again: the cache holds renders).

    Returns
    -------
    NucleusSet
    """
    from ainu_engine.errors import AinuError

    out = NucleusSet(preprocessing=cache.preprocessing(patch_size, min_occupied))
    ys, owners = [], []
    y = manifest.y
    for row, path in enumerate(manifest.files):
        rc, nucleus = row_cache(manifest, cache, row)
        try:
            img, stats = rc.get(path, spec, patch_size=patch_size, min_occupied=min_occupied,
                                nucleus=nucleus)  # fmt: skip
            if patch_size:
                if len(img) == 0:
                    raise InputError(
                        f"no {patch_size}x{patch_size} patch is more than "
                        f"{min_occupied:.0%} occupied",
                        path=path,
                        hint="use smaller patches or a higher magnification",
                    )
                items = [img[i] for i in range(len(img))]
            else:
                items = [img]
        except AinuError as err:
            out.failed[row] = str(err)
        else:
            if keep_sources and path.suffix.lower() not in IMAGE_SUFFIXES:
                out.sources[row] = rc.source(path, spec, nucleus)
            out.stats[row] = stats
            out.images.extend(items)
            ys.extend([int(y[row])] * len(items))
            owners.extend([row] * len(items))
        if on_item is not None:
            on_item()
    out.y = np.asarray(ys, np.int64)
    out.owner = np.asarray(owners, np.int64)
    return out
