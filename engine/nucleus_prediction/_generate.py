"""Nucleus images from actin images by an exported generator, on the engine's backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError
from ..model import GeneratorInfo
from ..runner import ModelRunner

__all__ = [
    "Generator",
    "actin_files",
    "from_model_range",
    "predict_images",
    "read_rgb",
    "tiled",
    "to_model_range",
]


def to_model_range(img: np.ndarray) -> np.ndarray:
    """8-bit (or [0, 1] float) H×W×3 (or H×W) → (3, H, W) float32 in [-1, 1].

    Parameters
    ----------
    img : ndarray
        The image (a 2-D one is repeated into the three channels).

    Returns
    -------
    ndarray, shape (3, H, W), float32

    Examples
    --------
    >>> to_model_range(np.full((2, 2, 3), 255, np.uint8))[:, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """
    a = np.asarray(img, np.float32)
    if a.max() > 1.0:
        a = a / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return np.moveaxis(a, -1, 0) * 2.0 - 1.0


def from_model_range(x: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] → H×W×3 uint8.

    Parameters
    ----------
    x : ndarray, shape (3, H, W)
        A generator's output (clipped to [-1, 1]).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Examples
    --------
    >>> from_model_range(np.zeros((3, 1, 1), np.float32)).tolist()
    [[[128, 128, 128]]]
    """
    return np.round((np.moveaxis(np.clip(x, -1, 1), 0, -1) + 1.0) * 127.5).astype(np.uint8)


def tiled(
    x: np.ndarray,
    size: int,
    run: Callable[[np.ndarray], np.ndarray],
    *,
    margin: int | None = None,
    batch: int = 1,
) -> np.ndarray:
    """Apply ``run`` over a (C, H, W) image of any size in overlapping square tiles.

    Each tile contributes only its centre, ``margin`` px in from its sides, so no output pixel
    comes from a tile's edge, where a convolutional generator sees little context. The image is
    padded by reflection.

    Parameters
    ----------
    x : ndarray, shape (C, H, W)
        The image.
    size : int
        The tile side (the model's input size).
    run : callable
        (B, C, size, size) float32 → (B, C', size, size), e.g. a backend's ``infer``.
    margin : int, optional
        The border of each tile that is dropped; default ``size // 4`` (``0``: abutting tiles).
    batch : int, default 1
        Tiles per call of ``run``.

    Returns
    -------
    ndarray, shape (C', H, W), float32

    Raises
    ------
    ValueError
        ``margin`` is not in [0, size // 2).

    Examples
    --------
    >>> x = np.random.default_rng(0).random((3, 50, 70), dtype=np.float32)
    >>> bool(np.array_equal(tiled(x, 32, lambda t: t, batch=4), x))
    True
    """
    m = size // 4 if margin is None else int(margin)
    if not 0 <= m < size // 2:
        raise ValueError(f"margin must lie in [0, {size // 2}), got {margin!r}")
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    step = size - 2 * m
    _, h, w = x.shape
    ph, pw = -h % step, -w % step
    xp = np.pad(x, ((0, 0), (m, m + ph), (m, m + pw)), mode="reflect")
    corners = [(r, c) for r in range(0, h + ph, step) for c in range(0, w + pw, step)]
    y = None
    for i in range(0, len(corners), batch):
        part = corners[i : i + batch]
        tiles = np.stack([xp[:, r : r + size, c : c + size] for r, c in part])
        got = run(np.ascontiguousarray(tiles, np.float32))
        if y is None:
            y = np.zeros((got.shape[1], h + ph, w + pw), np.float32)
        for (r, c), t in zip(part, got, strict=True):
            y[:, r : r + step, c : c + step] = t[:, m : m + step, m : m + step]
    return y[:, :h, :w]


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image as H×W×3: RGB as it is, a 2-D channel repeated, a z-stack max-projected.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF.

    Returns
    -------
    ndarray, shape (H, W, 3)
        In the file's type.

    Raises
    ------
    ainu_engine.errors.FormatError
        Not a readable TIFF, or neither RGB nor one channel.
    """
    import tifffile

    p = Path(path)
    try:
        a = tifffile.imread(p)
    except Exception as err:  # noqa: BLE001 - tifffile raises many types
        raise FormatError(f"not a readable TIFF ({err})", path=p) from err
    if a.ndim == 4:  # a z-stack: maximum projection
        a = a.max(axis=0)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise FormatError("expected an RGB image or a 2-D channel", path=p, found=str(a.shape))
    return a[..., :3]


class Generator(ModelRunner):
    """An exported generator (``ainu.kind`` generator) on any engine backend.

    Parameters
    ----------
    backend : ainu_engine.backends.Backend
        A backend of a generator model (:func:`ainu_engine.backends.create_backend`); loaded
        here.

    Raises
    ------
    ainu_engine.errors.InputError
        The model is a classifier, not a generator.

    Examples
    --------
    >>> gen = Generator.load("generator.onnx")  # doctest: +SKIP
    >>> nucleus = gen.generate(actin_rgb)  # doctest: +SKIP
    """

    kind = "generator"

    def __init__(self, backend) -> None:
        super().__init__(backend)
        self.info: GeneratorInfo

    @classmethod
    def load(
        cls, model: str | os.PathLike, backend: str = "auto", *, device: str = "auto", **options
    ) -> Generator:
        """The generator of ``model`` (.onnx) on ``backend`` (``auto``: the fastest here; the
        choice and any fallback are in :meth:`describe`)."""
        from ..backends import create_backend

        return cls(create_backend(model, backend, device=device, **options))

    def generate(self, actin: np.ndarray, *, overlap: bool = True) -> np.ndarray:
        """The nucleus image (H×W×3 uint8, nucleus in red) of an actin image.

        Parameters
        ----------
        actin : ndarray
            H×W×3 RGB (the actin in green) or H×W (the actin channel alone), 8-bit or [0, 1].
        overlap : bool, default True
            Overlapping tiles of which only the centre half is kept; False: abutting tiles.

        Returns
        -------
        ndarray, shape (H, W, 3), uint8
            The generated image; of a model trained on the Merged composite (which draws the
            actin beside the nucleus), the red channel alone.
        """
        img = np.asarray(actin)
        if img.ndim == 2:
            img = np.stack([np.zeros_like(img), img, np.zeros_like(img)], -1)
        if img.ndim != 3 or img.shape[-1] < 3:
            raise InputError(f"an actin image is H x W x 3 or H x W, got shape {img.shape}")
        y = tiled(
            to_model_range(img[..., :3]),
            self.info.input_size,
            self.backend.infer,
            margin=None if overlap else 0,
            batch=self.backend.preferred_batch,
        )
        rgb = from_model_range(y)
        if self.info.target == "merged":
            rgb[..., 1:] = 0
        return rgb


def actin_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The actin images of ``inputs``: files as given, folders searched for ``Actin_*.tif``.

    Parameters
    ----------
    inputs : sequence of path
        Files and folders.

    Returns
    -------
    list of Path

    Raises
    ------
    ainu_engine.errors.InputError
        No actin image found.
    """
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.tif*") if q.name.lower().startswith("actin"))
        else:
            files.append(p)
    if not files:
        raise InputError("no actin images (Actin_*.tif)", path=inputs[0] if inputs else None)
    return files


def predict_images(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | Generator,
    out: str | os.PathLike,
    *,
    overlap: bool = True,
    backend: str = "auto",
    device: str = "auto",
    on_image: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Write ``Predicted_NAME.tif`` (8-bit RGB, nucleus in red) for each actin image.

    Parameters
    ----------
    inputs : sequence of path
        Actin images, or folders of ``Actin_*.tif`` (:func:`actin_files`).
    model : path or Generator
        The exported generator (.onnx), or a loaded :class:`Generator`.
    out : path
        The output folder (created).
    overlap : bool, default True
        See :meth:`Generator.generate`.
    backend, device : str
        Where the generator runs (:func:`ainu_engine.backends.create_backend`).
    on_image : callable, optional
        Called with ``{"input", "output"}`` after each image (progress).

    Returns
    -------
    list of dict
        ``{"input", "output"}`` per image, in order.

    Raises
    ------
    ainu_engine.errors.InputError
        No actin image, or the model is not a generator.
    ainu_engine.errors.FormatError
        An image cannot be read.
    """
    import tifffile

    from ..io import atomic_path

    files = actin_files(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own = not isinstance(model, Generator)
    gen = Generator.load(model, backend, device=device) if own else model
    done = []
    try:
        for f in files:
            img = tifffile.imread(f)
            rgb = gen.generate(img if img.ndim == 2 else img[..., :3], overlap=overlap)
            dest = out / f"Predicted_{f.stem.removeprefix('Actin_')}.tif"
            with atomic_path(dest) as tmp:
                tifffile.imwrite(tmp, rgb, photometric="rgb")
            done.append({"input": str(f), "output": str(dest)})
            if on_image is not None:
                on_image(done[-1])
    finally:
        if own:
            gen.close()
    return done
