"""Throughput of the actin → nucleus generator (issue "Nucleus position from actin"): the
paper-width TFill-Coarse (63.3 M parameters) at 384 px, forward images/s (float32 and, on CUDA,
mixed precision) and the time of one real training iteration (``train_generator``: the G and D
steps of the run loop, read from its per-iteration callback), beside the L1-only U-Net baseline
at the same size in the same run. On CUDA, the peak memory of each.

Random weights for the forward passes (the time does not depend on what they learned); the
training iterations run on simulated tiles (``nucleus simulate``'s cells, 512 px tiles cropped
to 384 px). No goal is set by the issue; the paper's 10^5 iterations in hours at the measured
rate are reported beside the iteration time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ._harness import measure, register


def _forward(model, size: int, batch: int, device: str, *, amp: bool = False) -> dict:
    import torch

    model = model.to(device).eval()
    x = torch.from_numpy(
        np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    ).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        with (
            torch.no_grad(),
            torch.autocast(device_type=device, dtype=torch.float16, enabled=amp),
        ):
            model(x)

    t = measure(step, repeat=3 if device == "cpu" else 20, warmup=1 if device == "cpu" else 3,
                sync=sync)  # fmt: skip
    t["images_per_s"] = batch / t["median_s"]
    if device == "cuda":
        t["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return t


def _train(pairs: Path, out: Path, *, model: str, preset: str, size: int, batch: int,
           iterations: int, device: str) -> dict:  # fmt: skip
    import torch

    from ainu_engine.training.nucleus_prediction import GeneratorConfig, train_generator

    stamps: list[float] = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def tick(_rec):
        if device == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    cfg = GeneratorConfig(preset=preset, model=model, size=size, batch_size=batch,
                          iterations=iterations, device=device, test_fraction=0.25,
                          checkpoint_every=10**9, amp=True)  # fmt: skip
    train_generator(pairs, out, cfg, on_iteration=tick)
    times = np.diff(stamps)[1:]  # the first iteration includes the warm-up
    rec = {"median_s": float(np.median(times)), "iterations_timed": len(times),
           "amp": device == "cuda", "batch": batch}  # fmt: skip
    rec["hours_for_1e5_iterations"] = rec["median_s"] * 1e5 / 3600
    if device == "cuda":
        rec["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return rec


@register("nucleus", "TFill-Coarse paper width at 384 px: forward and training iteration vs "
          "the U-Net baseline", devices=("cpu", "cuda"))  # fmt: skip
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    import torch

    from ainu_engine.simulate import ActinConfig, simulate_tiles
    from ainu_engine.training.models.tfill import PRESETS, TFillCoarse
    from ainu_engine.training.models.unet import UNet

    preset = "tiny" if quick else "paper"
    size = 128 if quick else 384
    batch = 8 if device == "cuda" else 1
    train_batch = 4 if device == "cuda" else 1
    iterations = 6 if quick or device == "cpu" else 30
    torch.manual_seed(0)
    g, unet = TFillCoarse(PRESETS[preset]), UNet()
    n_params = sum(p.numel() for p in g.parameters())
    figures = []
    fw = _forward(g, size, batch, device)
    fu = _forward(unet, size, batch, device)
    figures.append({
        "name": f"generator forward, {size} px, batch {batch}, float32 (images/s)",
        "project": round(fw["images_per_s"], 3), "baseline": round(fu["images_per_s"], 3),
        "baseline_name": "U-Net (L1 baseline), same input",
        "ratio": fu["median_s"] / fw["median_s"],
        **({"peak_mem_gib": round(fw["peak_mem_gib"], 2)} if device == "cuda" else {}),
    })  # fmt: skip
    if device == "cuda":
        fa = _forward(g, size, batch, device, amp=True)
        figures.append({
            "name": f"generator forward, {size} px, batch {batch}, fp16 autocast (images/s)",
            "project": round(fa["images_per_s"], 3), "baseline": round(fw["images_per_s"], 3),
            "baseline_name": "the same in float32", "ratio": fw["median_s"] / fa["median_s"],
            "peak_mem_gib": round(fa["peak_mem_gib"], 2),
        })  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ainu-bench-nucleus-") as tmp:
        pairs = Path(tmp) / "cells"
        small = ActinConfig(tile_um=105.0, cells=(3, 6), spread_area_um2=(400.0, 1200.0))
        simulate_tiles(pairs, n_tiles=4, seed=5, config=small if quick else ActinConfig())
        tg = _train(pairs, Path(tmp) / "g", model="tfill", preset=preset, size=size,
                    batch=train_batch, iterations=iterations, device=device)  # fmt: skip
        tu = _train(pairs, Path(tmp) / "u", model="unet", preset=preset, size=size,
                    batch=train_batch, iterations=iterations, device=device)  # fmt: skip
    figures.append({
        "name": f"training iteration (G + D), {size} px, batch {train_batch} (s)",
        "project": round(tg["median_s"], 4), "baseline": round(tu["median_s"], 4),
        "baseline_name": "U-Net, L1 only (no discriminator)",
        "ratio": tu["median_s"] / tg["median_s"],
        "hours_for_1e5_iterations": round(tg["hours_for_1e5_iterations"], 2),
        "amp": tg["amp"], "iterations_timed": tg["iterations_timed"],
        **({"peak_mem_gib": round(tg["peak_mem_gib"], 2)} if device == "cuda" else {}),
    })  # fmt: skip
    return {
        "inputs": {
            "preset": preset,
            "generator_parameters": n_params,
            "size": size,
            "forward_batch": batch,
            "train_batch": train_batch,
            "train_iterations": iterations,
            "torch_threads": torch.get_num_threads(),
        },  # fmt: skip
        "baseline": "the L1-only U-Net baseline (ainu_engine.training.models.unet) at the same "
        "size and batch, in the same run",
        "figures": figures,
        "forward": {"tfill": fw, "unet": fu},
        "train": {"tfill": tg, "unet": tu},
    }
