"""Batched occlusion on any backend, equal to ``captum.attr.Occlusion``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..optional import install_hint
from ..scores import softmax

__all__ = ["Attribution", "IncrementalPlans", "occlusion", "forward_fn"]


@dataclass
class Attribution:
    """Attribution maps of one image.

    ``maps[t]`` (H, W) float32 is the attribution for ``targets[t]`` (class index); positive
    values mark regions whose occlusion lowers the target's output (evidence for the class),
    negative ones evidence against it — the sign convention of Captum and of the paper's
    figures.

    Attributes
    ----------
    maps : ndarray, shape (T, H, W), float32
        The attribution for each target.
    targets : list of int
        The class index of each map.
    class_names : list of str, optional
        The model's classes.
    method : str
        How the maps were made (``occlusion``, ``cam``, ...).
    params : dict
        The method's parameters (window, stride, baseline, incremental, ...).
    output : ndarray, optional
        The model's output for the unoccluded image.
    seconds : float
        Wall time.
    """

    maps: np.ndarray
    targets: list[int]
    class_names: list[str] | None = None
    method: str = "occlusion"
    params: dict = field(default_factory=dict)
    output: np.ndarray | None = None  #: the model's output for the unoccluded image (K,)
    seconds: float = 0.0

    def map_for(self, target: int | str) -> np.ndarray:
        if isinstance(target, str):
            target = self.class_names.index(target)
        return self.maps[self.targets.index(int(target))]


def forward_fn(model):
    """A function (B, C, H, W) float32 NumPy -> (B, K) NumPy logits, and the class names, for a
    backend, a :class:`~ainu_engine.Classifier` or a PyTorch module.

    Parameters
    ----------
    model : Backend, Classifier or torch.nn.Module
        The model.

    Returns
    -------
    (callable, list of str or None, int or None)
        The forward function, the class names, and the model's preferred batch.
    """
    if hasattr(model, "backend") and hasattr(model, "info"):  # Classifier
        model = model.backend
    if hasattr(model, "infer"):  # ainu_engine.backends.Backend
        model.load()
        names = list(model.info.classes) if model.info is not None else None
        return model.infer, names, model.preferred_batch
    import torch

    if isinstance(model, torch.nn.Module):
        model.eval()
        dev = next(model.parameters()).device

        def run(x):
            with torch.inference_mode():
                return (
                    model(torch.from_numpy(np.ascontiguousarray(x)).to(dev)).float().cpu().numpy()
                )

        return run, None, 32
    raise TypeError(
        f"expected a backend, a Classifier or a torch.nn.Module, got {type(model).__name__}"
    )


def occlusion(
    model,
    image,
    *,
    window: int | tuple[int, int] = 64,
    stride: int | tuple[int, int] = 32,
    target: int | str | Sequence | None = None,
    baseline: float | str | np.ndarray = 0.0,
    output: str = "logits",
    batch_size: int | None = None,
    blur_sigma_px: float = 16.0,
    incremental: bool | None = None,
    plans: IncrementalPlans | None = None,
) -> Attribution | list[Attribution]:
    """Occlusion attribution of one image (C, H, W) — or a list / (N, C, H, W) batch, whose
    windows are batched together — equal to ``captum.attr.Occlusion(model).attribute(x,
    sliding_window_shapes=(C, wh, ww), strides=(C, sh, sw), target=t, baselines=b)``.

    Parameters
    ----------
    model : Backend, Classifier or torch.nn.Module
        Anything :func:`forward_fn` accepts (ONNX Runtime, TensorRT, torch...).
    image : array (C, H, W) or (N, C, H, W) or list of (C, H, W)
        Model inputs (already rendered and scaled).
    window, stride : int or (int, int), default 64 and 32
        Window and stride in pixels (the paper: 64/32 on 512 px; also 32/16 and 32/8).
    target : None, int, str, "all" or a sequence
        ``None``: the predicted class; a class index or name; ``"all"``: each class.
    baseline : float, "blur" or array
        Value of occluded pixels (default 0); ``"blur"`` uses a Gaussian-blurred copy of the
        image; an array shaped like the image is used as it is.
    output : {"logits", "probabilities"}
        What f is. Captum (and the paper, which used it with the model's raw output) attributes
        the logits; probabilities give changes in softmax probability. The sign convention is
        the same for both: positive = evidence for the target.
    batch_size : int, optional
        Occluded images per forward pass (default: the backend's preferred batch; 64 copies
        per pass of the incremental plan).
    blur_sigma_px : float, default 16
        The Gaussian's sigma (pixels) of the ``"blur"`` baseline.
    incremental : bool, optional
        On an ONNX Runtime CPU backend, re-compute only what each window changes
        (:class:`~ainu_engine.explain._incremental.IncrementalPlan`: the same outputs, ~6x fewer
        operations for 64/32 on a 512 px ResNet-18; deep layers whose changed region covers
        most of the map, as in a DenseNet, run on whole maps: ``params["incremental_units"]``
        says how many run on crops). ``None`` (default): when the backend and
        model allow it, else whole passes (``params["incremental"]`` says which and why);
        ``True``: required (an error says why it cannot); ``False``: whole passes.
    plans : IncrementalPlans, optional
        Where the incremental plans live between calls (build once per model and image shape;
        the caller closes it). Default: a plan made for this call and closed after it.

    Returns
    -------
    Attribution, or a list of them for several images.

    Notes
    -----
    Windows start every ``stride`` pixels along each axis (ceil((n − window)/stride) + 1 of
    them) and the last one is clipped at the border; each covers every channel. Attribution of
    pixel p = Σ over windows k covering p of (f_t(x) − f_t(x_k)) / K(p). The occluded batches are
    built in one buffer by a Numba kernel and the deltas accumulated by another
    (``ainu_engine.kernels._occlusion``); only the model's outputs come back per batch. Windows of
    several
    images share batches (on a CUDA backend the batches are built on the device, one image at a
    time). With the incremental plan the model's output after a global average pool is
    computed in float64 from float32 features (a window's effect is not the difference of two
    rounded outputs), which is at least as close to the exact value as whole passes.

    References
    ----------
    Carnevali et al., Nat. Mach. Intell. 6, 1021-1033 (2024), doi:10.1038/s42256-024-00883-x;
    Zeiler & Fergus, ECCV 2014 (occlusion); Captum ``Occlusion``.

    Examples
    --------
    >>> from ainu_engine import Classifier
    >>> from ainu_engine.explain import occlusion
    >>> from ainu_engine.io import read
    >>> model = "examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    >>> with Classifier.load(model, "onnxruntime", device="cpu", render_device="cpu") as clf:
    ...     image = clf.prepare(read("examples/screen/slide1/somatic_0000.bin")).items[0]
    ...     a = occlusion(clf, image, window=16, stride=8, incremental=False)
    >>> a.maps.shape[1:] == image.shape[1:]
    True
    """
    t_start = time.perf_counter()
    if output not in ("logits", "probabilities"):
        raise ValueError(f"output must be 'logits' or 'probabilities', got {output!r}")
    images, single = _as_images(image)
    win = (window, window) if isinstance(window, int) else tuple(window)
    step = (stride, stride) if isinstance(stride, int) else tuple(stride)
    fwd, names, preferred = forward_fn(model)
    owned = plans is None
    plans = IncrementalPlans() if owned else plans
    try:
        plan, why = _incremental_plan(model, images[0].shape, incremental, win, step, plans)
        if plan is not None:
            bs = int(
                batch_size or 64
            )  # a DenseNet-121 keeps every copy's changed feature maps: memory
            base_out, jobs = _occlude_incremental_all(
                plan, images, target, names, baseline, blur_sigma_px, win, step, bs, output
            )
            extra = {
                "incremental": True,
                **plan.description,
                "incremental_units": plan.cut(win, step),
                "work_fraction": round(plan.work_fraction(win, step), 4),
            }
        else:
            bs = int(batch_size or max(preferred, 8))

            def f(x):
                return _output(np.asarray(fwd(x), np.float64), output)

            base_out = f(np.stack(images))
            jobs = [
                _job(img, row, target, names, baseline, blur_sigma_px, win, step)
                for img, row in zip(images, base_out, strict=True)
            ]
            if _backend_device(model) == "cuda" and _real_gpu():
                for n, (img, job) in enumerate(zip(images, jobs, strict=True)):
                    job["attr"], job["counts"] = _occlude_on_gpu(
                        f, img, job, win, bs, base_out[n, job["targets"]]
                    )
            else:
                _occlude_whole(f, images, jobs, base_out, win, bs)
            extra = {"incremental": False, "incremental_why_not": why}
    finally:
        if owned:
            plans.close()
    return _results(
        images, jobs, names, base_out, win, step, baseline, output, bs, extra, t_start, single
    )


def _as_images(image) -> tuple[list[np.ndarray], bool]:
    """The images as a list of contiguous float32 (C, H, W), and whether one was given alone."""
    single = isinstance(image, np.ndarray) and image.ndim == 3
    images = (
        [np.ascontiguousarray(image, np.float32)]
        if single
        else [np.ascontiguousarray(i, np.float32) for i in image]
    )
    if not images or any(i.ndim != 3 for i in images):
        raise ValueError("image must be (C, H, W), (N, C, H, W) or a list of (C, H, W) arrays")
    if any(img.shape != images[0].shape for img in images):
        raise ValueError("all images must have the same shape")
    return images, single


def _targets(target, out_row: np.ndarray, names) -> list[int]:
    if target is None:
        return [int(np.argmax(out_row))]
    if isinstance(target, str) and target == "all":
        return list(range(len(out_row)))
    if isinstance(target, (str, int, np.integer)):
        return [_class_index(target, names, len(out_row))]
    return [_class_index(t, names, len(out_row)) for t in target]


def _job(img, out_row, target, names, baseline, blur_sigma_px, window, stride) -> dict:
    """One image's occlusion work: its targets, baseline, windows and accumulators."""
    from ainu_engine.kernels import window_grid

    targets = _targets(target, out_row, names)
    tops, lefts = window_grid(img.shape[1], img.shape[2], window, stride)
    return {
        "targets": targets,
        "base": _baseline(img, baseline, blur_sigma_px),
        "tops": tops,
        "lefts": lefts,
        "attr": np.zeros((len(targets), *img.shape[1:]), np.float64),
        "counts": np.zeros(img.shape[1:], np.int64),
    }


def _occlude_incremental_all(
    plan, images, target, names, baseline, blur_sigma_px, window, stride, bs, output
):
    """Every image through the incremental plan, one at a time (its cached activations are
    large)."""
    rows, jobs = [], []
    for img in images:
        cache = plan.cache(img)
        rows.append(_output(cache["__out__"][None], output)[0])
        jobs.append(_job(img, rows[-1], target, names, baseline, blur_sigma_px, window, stride))
        _occlude_incremental(plan, cache, jobs[-1], rows[-1], window, stride, bs, output)
    return np.stack(rows), jobs


def _occlude_whole(f, images, jobs, base_out, window, bs) -> None:
    """Whole passes on the CPU: one queue of (image, window) for all images, so that batches are
    filled across images; each batch is built in one buffer and its deltas accumulated."""
    from ainu_engine.kernels import accumulate_deltas, fill_occluded

    wh, ww = window
    queue = [(n, w) for n, job in enumerate(jobs) for w in range(len(job["tops"]))]
    buf = np.empty((min(bs, len(queue)), *images[0].shape), np.float32)
    for s in range(0, len(queue), bs):
        chunk = queue[s : s + bs]
        segments = []  # (image, first window, count, offset in the batch)
        for off, (n, w) in enumerate(chunk):
            if segments and segments[-1][0] == n:
                segments[-1][2] += 1
            else:
                segments.append([n, w, 1, off])
        for n, w0, cnt, off in segments:
            job = jobs[n]
            fill_occluded(
                images[n],
                job["base"],
                job["tops"][w0 : w0 + cnt],
                job["lefts"][w0 : w0 + cnt],
                wh,
                ww,
                buf[off : off + cnt],
            )
        out = f(buf[: len(chunk)])
        for n, w0, cnt, off in segments:
            job = jobs[n]
            ref = base_out[n, job["targets"]]
            deltas = np.ascontiguousarray(ref[None, :] - out[off : off + cnt][:, job["targets"]])
            accumulate_deltas(
                deltas,
                job["tops"][w0 : w0 + cnt],
                job["lefts"][w0 : w0 + cnt],
                wh,
                ww,
                job["attr"],
                job["counts"],
            )


def _output(z: np.ndarray, output: str) -> np.ndarray:
    return softmax(z) if output == "probabilities" else z


def _results(
    images, jobs, names, base_out, window, stride, baseline, output, bs, extra, t_start, single
):
    results = []
    for n, job in enumerate(jobs):
        maps = (job["attr"] / np.maximum(job["counts"], 1)[None]).astype(np.float32)
        results.append(
            Attribution(
                maps,
                job["targets"],
                names,
                "occlusion",
                {
                    "window": list(window),
                    "stride": list(stride),
                    "n_windows": int(len(job["tops"])),
                    "baseline": baseline if isinstance(baseline, (int, float, str)) else "array",
                    "output": output,
                    "batch_size": bs,
                    **extra,
                },
                base_out[n].astype(np.float32),
            )
        )
    seconds = time.perf_counter() - t_start
    for r in results:
        r.seconds = seconds / len(results)
    return results[0] if single else results


#: ``incremental=None`` uses the plan when it does at most this part of whole passes' work
#: (2 cores, benchmarks/results/explain_plan-cpu.json: 2-5x faster than whole passes at 14-16 %
#: of the work, 1.5-2.2x at 32-53 %, break-even near 64 %, slower above)
INCREMENTAL_MAX_WORK = 0.6


class IncrementalPlans:
    """Incremental-occlusion plans of the models a caller explains, by (model file, image shape)
    — or why a model has none. Reused across images; :meth:`close` shuts their thread pools
    down. :func:`occlusion` makes a short-lived one when it is given none.
    """

    def __init__(self) -> None:
        self._plans: dict = {}

    def get(self, backend, shape) -> object:
        """The :class:`~ainu_engine.explain._incremental.IncrementalPlan` of ``backend``'s model for
        images of ``shape`` (built on first use), or a string saying why there is none."""
        key = (str(backend.model_path), tuple(shape))
        if key not in self._plans:
            self._plans[key] = self._build(backend, shape)
        return self._plans[key]

    @staticmethod
    def _build(backend, shape):
        try:
            from ._incremental import IncrementalPlan, IncrementalUnsupported
        except ImportError as err:  # the onnx package (cpu/cuda/train extras) reads the graph
            return f"the incremental plan needs the onnx package ({install_hint('cpu')}): {err}"
        try:
            return IncrementalPlan.from_onnx(
                backend.model_path, shape, threads=backend.threads, spinning=backend.spinning
            )
        except ImportError as err:
            return f"the incremental plan needs the onnx package ({install_hint('cpu')}): {err}"
        except IncrementalUnsupported as err:
            return str(err)

    def close(self) -> None:
        for plan in self._plans.values():
            if not isinstance(plan, str):
                plan.close()
        self._plans.clear()

    def __enter__(self) -> IncrementalPlans:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _incremental_plan(
    model, shape, incremental: bool | None, window, stride, plans: IncrementalPlans
):
    """(plan, None) when occlusion runs incrementally, else (None, the reason)."""
    if incremental is False:
        return None, "incremental=False"
    backend = model.backend if hasattr(model, "backend") and hasattr(model, "info") else model
    if (
        getattr(backend, "name", None) != "onnxruntime"
        or getattr(backend, "provider", None) != "cpu"
    ):
        why = "the incremental plan runs on the ONNX Runtime CPU backend only"
    else:
        plan = plans.get(backend, shape)
        if isinstance(plan, str):
            why = plan
        else:
            frac = plan.work_fraction(window, stride)
            if incremental or frac <= INCREMENTAL_MAX_WORK:
                return plan, None
            return None, (
                f"windows this large change {frac:.0%} of the model's work "
                f"(the incremental plan pays below {INCREMENTAL_MAX_WORK:.0%}; incremental=True "
                "forces it)"
            )
    if incremental:
        raise ValueError(f"occlusion cannot run incrementally: {why}")
    return None, why


def _occlude_incremental(plan, cache, job, ref, window, stride, bs, output):
    """Windows of one image through the incremental plan, ``bs`` occluded copies per pass."""
    from ainu_engine.kernels import accumulate_deltas

    n_win = len(job["tops"])
    for s in range(0, n_win, bs):
        idx = np.arange(s, min(s + bs, n_win))
        out = _output(plan.logits(cache, idx, job["base"], window, stride), output)
        deltas = np.ascontiguousarray(ref[job["targets"]][None, :] - out[:, job["targets"]])
        accumulate_deltas(
            deltas,
            job["tops"][s : s + len(idx)],
            job["lefts"][s : s + len(idx)],
            window[0],
            window[1],
            job["attr"],
            job["counts"],
        )


def _baseline(img: np.ndarray, baseline, blur_sigma_px: float) -> np.ndarray:
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, 'blur' or an array, got {baseline!r}")
        from scipy import ndimage

        return np.stack(
            [ndimage.gaussian_filter(ch, blur_sigma_px, mode="nearest") for ch in img]
        ).astype(np.float32)
    if np.isscalar(baseline):
        return np.full_like(img, np.float32(baseline))
    return np.ascontiguousarray(np.broadcast_to(np.asarray(baseline, np.float32), img.shape))


def _backend_device(model) -> str:
    if hasattr(model, "backend") and hasattr(model, "info"):
        model = model.backend
    return getattr(model, "device", "cpu")


def _real_gpu() -> bool:
    try:
        from ainu_engine.kernels import cuda_available
    except ImportError:
        return False
    return cuda_available()


def _occlude_on_gpu(f, img, job, window, bs, ref):
    """The occluded batches are built in device memory and handed to the backend there (ONNX
    Runtime's IO binding, TensorRT, torch); deltas are accumulated on the device."""
    from numba import cuda

    from ainu_engine.kernels import accumulate_deltas_cuda, fill_occluded_cuda

    wh, ww = window
    tops, lefts, targets = job["tops"], job["lefts"], job["targets"]
    c, h, w = img.shape
    d_img, d_base = cuda.to_device(img), cuda.to_device(job["base"])
    d_tops, d_lefts = cuda.to_device(tops), cuda.to_device(lefts)
    d_buf = cuda.device_array((min(bs, len(tops)), c, h, w), np.float32)
    d_attr = cuda.to_device(np.zeros((len(targets), h, w), np.float64))
    d_counts = cuda.to_device(np.zeros((h, w), np.int64))
    for s in range(0, len(tops), bs):
        e = min(s + bs, len(tops))
        fill_occluded_cuda(d_img, d_base, d_tops[s:e], d_lefts[s:e], wh, ww, d_buf)
        out = f(d_buf[: e - s])
        deltas = np.ascontiguousarray(ref[None, :] - out[:, targets])
        accumulate_deltas_cuda(
            cuda.to_device(deltas), d_tops[s:e], d_lefts[s:e], wh, ww, d_attr, d_counts
        )
    return d_attr.copy_to_host(), d_counts.copy_to_host()


def _class_index(t, names, k: int) -> int:
    if isinstance(t, str):
        if names is None or t not in names:
            raise ValueError(f"unknown class {t!r}; classes: {names}")
        return names.index(t)
    t = int(t)
    if not 0 <= t < k:
        raise ValueError(f"target {t} is not a class index (0..{k - 1})")
    return t
