"""Training the actin → nucleus generator (TFill-Coarse + StyleGAN2-like discriminator) and its
ONNX export (methods spec §2.3-2.5, §4.2).

Data: a folder of tiles in the NuclearPrediction layout (a folder per tile with ``Actin_*``,
``Nucleus_*``, ``Merged_*`` 8-bit RGB TIFFs; ``ainu-engine nucleus simulate`` writes it) or
plain two-channel TIFFs (actin, nucleus). Images are scaled to [-1, 1]. Each training sample
gets its own random crop and horizontal flip (the public code draws one crop and flip for the
whole run: not repeated here). Losses: the fork's reconstruction loss (nucleus pixels weighted
α = 10, λ_rec = 10) + the non-saturating GAN loss (λ_g = 1); LPIPS is not used (its VGG weights
cannot be downloaded here). Adam(0.5, 0.9), lr 1e-4 (G) and 4e-4 (D). Checkpoints every
``checkpoint_every`` iterations; a run resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ainu_engine.errors import FormatError, InputError
from ainu_engine.nucleus_prediction import from_model_range, read_rgb, tiled, to_model_range

from .checkpoint import load_generator, read_training_state, save_generator, save_training_state

__all__ = ["GeneratorConfig", "read_pairs", "split_pairs", "train_generator", "export_generator",
           "load_generator", "to_model_range", "from_model_range", "tiled"]  # fmt: skip


@dataclass(frozen=True)
class GeneratorConfig:
    """A generator training run.

    Attributes
    ----------
    preset : str
        TFill's widths (``tiny``, ``paper``).
    model : str
        "tfill" (TFill-Coarse + GAN) or "unet" (the L1-only baseline).
    size : int
        Training crop (px), a multiple of 16.
    iterations : int
        Training iterations.
    batch_size : int
        Tiles per iteration.
    lr : float
        The generator's Adam learning rate.
    lr_d : float
        The discriminator's.
    lambda_rec : float
        The reconstruction loss's weight.
    alpha : float
        The weight of nucleus pixels in it.
    lambda_g : float
        The GAN term's weight (0: L1 alone).
    gan_start : int
        Iterations on L1 alone before the GAN term and discriminator start.
    target : str
        "nucleus" (the paper) or "merged" (the public code).
    test_fraction : float
        Tiles held out.
    split : str
        "random" or "group" (whole coverslips to one side).
    seed : int
        The seed.
    checkpoint_every : int
        Iterations between resume states.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    amp : bool
        Mixed precision on CUDA.
    """

    preset: str = "tiny"
    model: str = "tfill"
    size: int = 128
    iterations: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    lr_d: float = 4e-4
    lambda_rec: float = 10.0
    alpha: float = 10.0
    lambda_g: float = 1.0
    gan_start: int = 0
    target: str = "nucleus"
    test_fraction: float = 0.2
    split: str = "random"
    seed: int = 0
    checkpoint_every: int = 200
    device: str = "auto"
    amp: bool = True

    def __post_init__(self):
        if self.gan_start < 0:
            raise ValueError(f"gan_start must be >= 0, got {self.gan_start!r}")
        if self.size % 16 or self.size < 16:
            raise ValueError(f"size must be a multiple of 16, got {self.size!r}")
        if self.target not in ("nucleus", "merged"):
            raise ValueError(f"target must be nucleus or merged, got {self.target!r}")
        if self.model not in ("tfill", "unet"):
            raise ValueError(f"model must be tfill or unet, got {self.model!r}")
        if self.split not in ("random", "group"):
            raise ValueError(f"split must be random or group, got {self.split!r}")


def read_pairs(folder: str | os.PathLike) -> list[dict]:
    """Tiles of ``folder``: each ``{"name", "group", "actin", "nucleus", "merged"}`` with the
    images (H×W×3 uint8). Tile folders with ``Actin_*``/``Nucleus_*`` (``Merged_*`` optional:
    made from the two), or two-channel TIFFs ``*.tif`` (channel 0 actin, 1 nucleus) directly in
    ``folder``. Groups come from ``pairs.csv`` when present (the simulator's coverslips).

    Parameters
    ----------
    folder : str or os.PathLike
        The tiles.

    Returns
    -------
    list of dict

    Raises
    ------
    ainu_engine.errors.InputError
        Not a folder, or no tiles.
    ainu_engine.errors.FormatError
        A tile folder without its pair, images of different sizes, or one that cannot be
        read.
    """
    import tifffile

    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder of image pairs", path=root)
    groups = {}
    if (root / "pairs.csv").is_file():
        with open(root / "pairs.csv", newline="") as fh:
            groups = {r["tile"]: r.get("group", "") for r in csv.DictReader(fh)}
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        actin = sorted(d.glob("Actin_*.tif*"))
        nucleus = sorted(d.glob("Nucleus_*.tif*"))
        if not actin and not nucleus:
            continue
        if len(actin) != 1 or len(nucleus) != 1:
            raise FormatError("a tile folder needs one Actin_* and one Nucleus_* image", path=d)
        a, n = read_rgb(actin[0]), read_rgb(nucleus[0])
        if a.shape != n.shape:
            raise FormatError(f"Actin {a.shape} and Nucleus {n.shape} differ in size", path=d)
        merged = sorted(d.glob("Merged_*.tif*"))
        m = read_rgb(merged[0]) if merged else np.maximum(a, n)
        name = re.sub(r"^Actin_", "", actin[0].stem)
        out.append({"name": name, "group": groups.get(d.name, ""), "actin": a, "nucleus": n,
                    "merged": m})  # fmt: skip
    for p in sorted(root.glob("*.tif*")):
        img = tifffile.imread(p)
        if img.ndim != 3 or 2 not in (img.shape[0], img.shape[-1]):
            raise FormatError("expected a two-channel (actin, nucleus) image", path=p,
                              found=str(img.shape))  # fmt: skip
        img = img if img.shape[0] == 2 else np.moveaxis(img, -1, 0)
        z = np.zeros(img.shape[1:], np.uint8)
        sc = 255.0 / max(float(img.max()), 1.0)
        a8 = np.round(img[0] * sc).astype(np.uint8)
        n8 = np.round(img[1] * sc).astype(np.uint8)
        out.append(
            {"name": p.stem, "group": "", "actin": np.stack([z, a8, z], -1),
             "nucleus": np.stack([n8, z, z], -1), "merged": np.stack([n8, a8, z], -1)}
        )  # fmt: skip
    if not out:
        raise InputError("no image pairs (Actin_*/Nucleus_* tile folders or 2-channel TIFFs)",
                         path=root)  # fmt: skip
    return out


def split_pairs(pairs: list[dict], cfg: GeneratorConfig) -> tuple[list[int], list[int]]:
    """(train, test) indices: a random ``test_fraction``, or whole groups (coverslips).

    Parameters
    ----------
    pairs : list of dict
        :func:`read_pairs`' tiles.
    cfg : GeneratorConfig
        ``test_fraction``, ``split``, ``seed``.

    Returns
    -------
    (list of int, list of int)
    """
    rng = np.random.default_rng(cfg.seed)
    n = len(pairs)
    n_test = max(1, int(round(cfg.test_fraction * n))) if n > 1 else 0
    if cfg.split == "group":
        names = sorted({p["group"] for p in pairs})
        if len(names) < 2:
            raise ValueError("a group split needs at least two groups (coverslips)")
        test_groups, count = set(), 0
        for g in rng.permutation(names):
            if count >= n_test:
                break
            test_groups.add(g)
            count += sum(p["group"] == g for p in pairs)
        test = [i for i, p in enumerate(pairs) if p["group"] in test_groups]
    else:
        test = sorted(rng.choice(n, size=n_test, replace=False).tolist())
    train = [i for i in range(n) if i not in set(test)]
    return train, test


def _batch(arrs_in, arrs_out, idx, size, rng):
    """Per-sample random crops and horizontal flips."""
    xs, ys = [], []
    for i in idx:
        a, b = arrs_in[i], arrs_out[i]
        h, w = a.shape[1:]
        r = int(rng.integers(0, h - size + 1))
        c = int(rng.integers(0, w - size + 1))
        a, b = a[:, r : r + size, c : c + size], b[:, r : r + size, c : c + size]
        if rng.random() < 0.5:
            a, b = a[:, :, ::-1], b[:, :, ::-1]
        xs.append(a)
        ys.append(b)
    return np.ascontiguousarray(np.stack(xs)), np.ascontiguousarray(np.stack(ys))


def train_generator(
    pairs_dir: str | os.PathLike,
    out: str | os.PathLike,
    config: GeneratorConfig | None = None,
    *,
    on_iteration=None,
) -> dict:
    """Train the generator on the tiles of ``pairs_dir``; write ``out/`` (``config.json``,
    ``split.json``, ``history.csv``, ``loss.png``, ``checkpoint.pt`` — resumed from when
    present —, ``generator.pt``). Returns a summary.

    Parameters
    ----------
    pairs_dir : str or os.PathLike
        The tiles (:func:`read_pairs`).
    out : str or os.PathLike
        The run folder.
    config : GeneratorConfig, optional
        The run.
    on_iteration : callable, optional
        Called with each iteration's record.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        An unknown preset.
    ainu_engine.errors.InputError
        Tiles smaller than the crop.
    """
    import torch

    from .models.tfill import (
        PRESETS,
        StyleDiscriminator,
        TFillCoarse,
        discriminator_gan_loss,
        generator_gan_loss,
        nucleus_mask,
        reconstruction_loss,
    )
    from .train import resolve_device

    cfg = config or GeneratorConfig()
    if cfg.preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {cfg.preset!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device, _ = resolve_device(cfg.device)
    pairs = read_pairs(pairs_dir)
    small = min(min(p["actin"].shape[:2]) for p in pairs)
    if small < cfg.size:
        raise InputError(f"tiles of {small} px are smaller than the {cfg.size} px crop",
                         path=pairs_dir, hint="lower --size")  # fmt: skip
    train_idx, test_idx = split_pairs(pairs, cfg)
    names = {"train": [pairs[i]["name"] for i in train_idx],
             "test": [pairs[i]["name"] for i in test_idx]}  # fmt: skip
    (out / "split.json").write_text(json.dumps(names, indent=1))
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    x_all = [to_model_range(p["actin"]) for p in pairs]
    tgt = [to_model_range(p[cfg.target]) for p in pairs]
    nuc = [to_model_range(p["nucleus"]) for p in pairs]
    torch.manual_seed(cfg.seed)
    gan = cfg.model == "tfill" and cfg.lambda_g > 0  # else L1 only: no discriminator steps
    if cfg.model == "tfill":
        g = TFillCoarse(PRESETS[cfg.preset]).to(device)
    else:
        from .models.unet import UNet

        g = UNet().to(device)
    d = StyleDiscriminator(cfg.size, ndf=PRESETS[cfg.preset].ndf).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(0.5, 0.9))
    use_amp = cfg.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng(cfg.seed)
    start, history = 0, []
    ck = out / "checkpoint.pt"
    if ck.is_file():
        state = read_training_state(ck)
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        rng.bit_generator.state = state["rng"]
        start, history = state["iteration"], state["history"]
    t0 = time.perf_counter()
    stacked = [np.concatenate([t, n], 0) for t, n in zip(tgt, nuc, strict=True)]
    for it in range(start + 1, cfg.iterations + 1):
        idx = rng.choice(train_idx, size=cfg.batch_size, replace=len(train_idx) < cfg.batch_size)
        xb, yb = _batch(x_all, stacked, idx, cfg.size, rng)
        x = torch.from_numpy(xb).to(device)
        y = torch.from_numpy(yb[:, :3]).to(device)
        m = nucleus_mask(torch.from_numpy(yb[:, 3:]).to(device))
        gan_on = gan and it > cfg.gan_start
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
            fake = g(x)
            ld = discriminator_gan_loss(d(y), d(fake.detach())) if gan_on else torch.zeros(())
        if gan_on:
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(ld).backward()
            scaler.step(opt_d)
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
            lrec = reconstruction_loss(fake.float(), y, m, alpha=cfg.alpha, weight=cfg.lambda_rec)
            lg = generator_gan_loss(d(fake)) if gan_on else torch.zeros((), device=device)
            loss = lrec + cfg.lambda_g * lg
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt_g)
        scaler.update()
        rec = {"iteration": it, "loss_g": float(loss.detach()), "loss_rec": float(lrec.detach()),
               "loss_gan_g": float(lg.detach()), "loss_d": float(ld.detach())}  # fmt: skip
        history.append(rec)
        if on_iteration is not None:
            on_iteration(rec)
        if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
            _save(ck, g, d, opt_g, opt_d, rng, it, history)
    save_generator(out / "generator.pt", g, run=asdict(cfg))
    _write_history(out, history)
    test_l1 = _test_l1(g, x_all, tgt, test_idx, cfg.size, device)
    summary = {"iterations": cfg.iterations, "resumed_from": start, "train": len(train_idx),
               "test": len(test_idx), "seconds": round(time.perf_counter() - t0, 1),
               "first_loss_rec": history[0]["loss_rec"] if history else None,
               "last_loss_rec": float(np.mean([h["loss_rec"] for h in history[-20:]])),
               "test_l1": test_l1, "device": device}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _save(path: Path, g, d, opt_g, opt_d, rng, it: int, history: list) -> None:
    save_training_state(path, g=g.state_dict(), d=d.state_dict(), opt_g=opt_g.state_dict(),
                        opt_d=opt_d.state_dict(), rng=rng.bit_generator.state, iteration=it,
                        history=history)  # fmt: skip


def _write_history(out: Path, history: list[dict]) -> None:
    from matplotlib.figure import Figure

    if not history:
        return
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    it = [h["iteration"] for h in history]
    for k in ("loss_rec", "loss_gan_g", "loss_d"):
        v = np.array([h[k] for h in history])
        if not (v > 0).any():  # the U-Net baseline has no GAN terms
            continue
        win = max(1, len(v) // 50)
        ax.plot(it, np.convolve(v, np.ones(win) / win, mode="same"), label=k)
    ax.set_xlabel("iteration")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)


def _test_l1(g, x_all, tgt, test_idx, size, device) -> float | None:
    """Mean |G(x) − y| on the centre crop of each test tile (in [-1, 1] units)."""
    import torch

    if not test_idx:
        return None
    g.eval()
    vals = []
    with torch.inference_mode():
        for i in test_idx:
            h, w = x_all[i].shape[1:]
            r, c = (h - size) // 2, (w - size) // 2
            x = torch.from_numpy(
                np.ascontiguousarray(x_all[i][None, :, r : r + size, c : c + size])
            )
            y = tgt[i][:, r : r + size, c : c + size]
            vals.append(float(np.mean(np.abs(g(x.to(device)).cpu().numpy()[0] - y))))
    g.train()
    return float(np.mean(vals))


def export_generator(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int,
    pixel_um: float | None,
    atol: float = 1e-4,
    opset: int = 18,
) -> dict:
    """``generator.pt`` → one ONNX file (input ``actin`` (N, 3, S, S) in [-1, 1], output
    ``nucleus`` the same) with its :class:`~ainu_engine.model.GeneratorInfo` metadata, through
    the project's one export gate (:func:`~ainu_engine.training.export.onnx_bytes_checked`):
    written only after ONNX Runtime matched PyTorch within ``atol`` on random inputs at batch 1
    and 3.

    Raises
    ------
    ainu_engine.errors.ParityError
        ONNX Runtime and PyTorch differ by more than ``atol``; nothing is written.
    ainu_engine.errors.InputError
        Not a generator file.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        ``generator.pt``.
    out : str or os.PathLike
        The ``.onnx``.
    size : int
        The input side.
    pixel_um : float or None
        The training tiles' pixel.
    atol : float
        The parity tolerance.
    opset : int
        The ONNX opset.

    Returns
    -------
    dict
        ``path``, ``bytes``, ``max_abs_diff``, ``atol``.
    """
    import torch

    from ainu_engine.io import atomic_write_bytes
    from ainu_engine.model import GeneratorInfo
    from ainu_engine.provenance import __version__

    from .export import onnx_bytes_checked

    g, ck = load_generator(checkpoint)
    run = ck["run"]
    info = GeneratorInfo(
        input_size=int(size),
        target=str(run.get("target") or "nucleus"),
        pixel_um=pixel_um,
        method=("TFill-Coarse" if run.get("model", "tfill") == "tfill" else "U-Net, L1")
        + ", actin -> nucleus (Vasudevan et al., PLoS ONE 2022)",
        model=ck["config"],
        provenance={"ainu_engine": __version__, "torch": torch.__version__, "run": run,
                    "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    )  # fmt: skip
    data, cmp = onnx_bytes_checked(g, info, Path(out), opset=opset, atol=atol)
    atomic_write_bytes(Path(out), data)
    return {"path": str(out), "bytes": len(data), "max_abs_diff": cmp.max_abs, "atol": atol}


def with_overrides(cfg: GeneratorConfig, **kw) -> GeneratorConfig:
    """``cfg`` with the non-None keyword arguments replaced."""
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
