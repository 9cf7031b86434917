"""Regenerate the bundled screening example: a small model trained on SIMULATED nuclei and a
small batch of simulated nuclei in real file formats (Insight3 .bin, ThunderSTORM CSV, Parquet).

    python examples/make_screen_example.py        # needs the train extra (torch, onnx)

Everything is seeded: the data files are byte-identical on every run; the model is identical on
the same machine (PyTorch CPU kernels may differ in the last bits between machines).
The model is labelled as trained on simulated data in its metadata and file name: it shows the
engine working end to end and is not a model of real cells.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
BATCH = HERE / "screen"
LOCS = 1.2e4  # localizations per nucleus: small files, still enough to tell the classes apart


def main() -> int:
    import torch

    from ainu_engine.render import RenderSpec
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.checkpoint import update_provenance
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.export import export_onnx
    from ainu_engine.training.train import TrainConfig, train

    torch.set_num_threads(2)
    obs = Observation(locs_per_channel=LOCS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = simulate_dataset(
            tmp / "train",
            classes=("hiPSC", "somatic"),
            n_per_class=60,
            channels=("polII",),
            observation=obs,
            difficulty=0.0,
            seed=11,
        )
        spec = RenderSpec(pixel_nm=100, sigma_nm=100, size=64, scaling="percentile")
        cfg = TrainConfig(
            arch="small_cnn", epochs=60, patience=20, batch_size=8, lr=3e-3, folds=0, seed=0
        )
        summary = train(
            read_manifest(manifest),
            tmp / "run",
            config=cfg,
            spec=spec,
            cache=RenderCache(tmp / "cache", device="cpu"),
        )
        ckpt_path = tmp / "run" / "best.pt"
        update_provenance(
            ckpt_path,
            training_data=(
                "SIMULATED nuclei (training.simulate: hiPSC vs somatic, "
                f"difficulty 0, seed 11, {LOCS:.0f} Pol II localizations "
                "each); not a model of real cells"
            ),
            manifest="simulated by examples/make_screen_example.py",
        )
        MODEL.parent.mkdir(exist_ok=True)
        r = export_onnx(ckpt_path, MODEL, force=True)
        print(
            f"model: {MODEL.relative_to(HERE.parent)} ({r.size_bytes / 1e3:.0f} kB), test accuracy "
            "on "
            f"{summary['test']['n']} simulated nuclei {summary['test']['accuracy']:.3f}; "
            f"{r.comparison}"
        )
    if BATCH.exists():
        shutil.rmtree(BATCH)
    for slide, fmt, classes, seed in (
        ("slide1", "insight3", ("hiPSC", "somatic"), 21),
        ("slide2", "thunderstorm", ("hiPSC", "somatic"), 22),
        ("slide3", "parquet", ("somatic",), 23),
    ):
        simulate_dataset(
            BATCH / slide,
            classes=classes,
            n_per_class=1,
            channels=("polII",),
            observation=obs,
            difficulty=0.0,
            seed=seed,
            format=fmt,
        )
    for truth in BATCH.rglob("*.truth.parquet"):  # per-localization tags: not needed for the demo
        truth.unlink()
    n = sum(1 for p in BATCH.rglob("*") if p.is_file())
    print(f"batch: {BATCH.relative_to(HERE.parent)} ({n} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
