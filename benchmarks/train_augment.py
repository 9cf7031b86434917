"""What the augmentations on localizations cost a training epoch on the CPU (issue 34).

The same run — 120 simulated nuclei of 3·10⁴ localizations, one channel, the same seed — trained
for a few epochs without and with ``--augment-localizations default`` (every training item
rendered each epoch from an augmented copy of its nucleus), for the bundled example's small CNN
at 64 px and for DenseNet-121 at 128 px (the grid's point under docs/results). The figure is
the median epoch time (``history.csv`` → ``seconds``: training and validation of one epoch).

Goal (issue 34): an epoch with the augmentations ≤ 1.5× one without.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._harness import in_scratch, register

EPOCHS = 4


def _epoch_seconds(tmp: Path, manifest, arch: str, size: int, augment, cache) -> list[float]:
    from ainu_engine.render import RenderSpec
    from ainu_engine.training.augment import LocAugmentConfig
    from ainu_engine.training.train import TrainConfig, train

    name = f"{arch}-{size}-{'aug' if augment else 'plain'}"
    cfg = TrainConfig(arch=arch, epochs=EPOCHS, patience=EPOCHS, batch_size=16, folds=0, seed=0,
                      device="cpu", threads=2,
                      augment_localizations=LocAugmentConfig() if augment else None)  # fmt: skip
    train(manifest, tmp / name, spec=RenderSpec(pixel_nm=100, sigma_nm=100, size=size,
                                                scaling="percentile"),
          cache=cache, config=cfg)  # fmt: skip
    import csv

    rows = list(csv.DictReader((tmp / name / "history.csv").open()))
    return [float(r["seconds"]) for r in rows]


@register(
    "train_augment",
    "training epoch time with localization augmentations vs without, small CNN 64 px and "
    "DenseNet-121 128 px, 120 simulated nuclei, CPU",
)
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    return in_scratch("ainu-bench-train-augment-", _run, quick=quick)


def _run(tmp: Path, *, quick: bool) -> dict:
    import torch

    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.data import RenderCache, read_manifest

    torch.set_num_threads(2)
    n = 10 if quick else 60
    manifest = read_manifest(simulate_dataset(
        tmp / "data", n_per_class=n, observation=Observation(locs_per_channel=3e4), seed=41,
        difficulty=0.0))  # fmt: skip
    cache = RenderCache(tmp / "cache", device="cpu")
    points = [("small_cnn", 64)] + ([] if quick else [("densenet121", 128)])
    figures, rows = [], []
    for arch, size in points:
        plain = _epoch_seconds(tmp, manifest, arch, size, False, cache)
        aug = _epoch_seconds(tmp, manifest, arch, size, True, cache)
        # the first epoch of each includes warm-up (allocations, JIT): the median of the rest
        p, a = float(np.median(plain[1:] or plain)), float(np.median(aug[1:] or aug))
        rows.append({"arch": arch, "image_size": size, "epoch_s_plain": plain,
                     "epoch_s_augmented": aug, "ratio": a / p})  # fmt: skip
        figures.append({
            "name": f"{arch} {size} px: seconds per epoch with localization augmentations",
            "project": round(a, 2), "baseline": round(p, 2),
            "baseline_name": "the same run without them", "ratio": a / p,
        })  # fmt: skip
    return {
        "inputs": {"nuclei": 2 * n, "localizations_per_nucleus": 30000, "epochs": EPOCHS,
                   "threads": 2, "augment_localizations": "default"},  # fmt: skip
        "baseline": "the same training without localization augmentations",
        "runs": rows,
        "figures": figures,
        "goals": [{
            "goal": "an epoch with the augmentations <= 1.5x one without (CPU)",
            "measured": "; ".join(f"{r['arch']} {r['image_size']} px {r['ratio']:.2f}x"
                                  for r in rows),
            "met": all(r["ratio"] <= 1.5 for r in rows),
        }],  # fmt: skip
    }
