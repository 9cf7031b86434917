"""Augmentations on the localizations, before rendering (issue 34): deterministic under a seed,
rigid (no change of aspect ratio or scale), blink merging right, an un-augmented nucleus renders
byte-identical to its cached render, and a training run with them records them."""

from __future__ import annotations

import numpy as np
import pytest

from ainu_engine.io import Localizations
from ainu_engine.training.augment import (
    LocAugmentConfig,
    augment_localizations,
    merge_repeats,
)

NONE = LocAugmentConfig(partial=0, subsample=0, noise=0, merge=0, split=0, rotate=0, flip=0)


def _nucleus(seed: int = 0, n_emitters: int = 800, blinks: int = 3) -> Localizations:
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 1, (n_emitters, 2)) * [12_000, 7_000]  # an elongated nucleus
    pos = np.repeat(centre, blinks, axis=0) + rng.normal(0, 8, (n_emitters * blinks, 2))
    first = np.sort(rng.integers(0, 20_000, n_emitters))
    frame = np.repeat(first, blinks) + np.tile(np.arange(blinks), n_emitters)
    return Localizations(pos[:, 0], pos[:, 1], frame=frame,
                         precision_nm=np.full(len(pos), 8.0),
                         photons=np.full(len(pos), 1000.0))  # fmt: skip


def test_the_same_seed_gives_the_same_copy_and_none_leaves_the_table_alone():
    locs = _nucleus()
    cfg = LocAugmentConfig(partial=1, subsample=1, noise=1, merge=1, split=1, rotate=1, flip=1)
    a = augment_localizations(locs, cfg, np.random.default_rng(5))
    b = augment_localizations(locs, cfg, np.random.default_rng(5))
    c = augment_localizations(locs, cfg, np.random.default_rng(6))
    assert np.array_equal(a.x_nm, b.x_nm) and np.array_equal(a.frame, b.frame)
    assert a.n != c.n or not np.array_equal(a.x_nm, c.x_nm)
    assert augment_localizations(locs, NONE, np.random.default_rng(0)) is locs
    assert np.array_equal(locs.x_nm, _nucleus().x_nm)  # the input is never changed


def test_rotations_and_mirrors_are_rigid_and_never_shrink_a_nucleus():
    locs = _nucleus(1)
    pts = np.column_stack([locs.x_nm, locs.y_nm]).astype(np.float64)[:300]
    for seed in range(8):
        cfg = LocAugmentConfig(partial=0, subsample=0, noise=0, merge=0, split=0, rotate=1,
                               flip=seed % 2)  # fmt: skip
        out = augment_localizations(locs[np.arange(300)], cfg, np.random.default_rng(seed),
                                    fits_nm=9_000.0)  # fmt: skip
        q = np.column_stack([out.x_nm, out.y_nm]).astype(np.float64)
        d0 = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        d1 = np.linalg.norm(q[:, None] - q[None], axis=-1)
        np.testing.assert_allclose(d1, d0, atol=0.05)  # distances kept: no scale, no shear
        # its extent never grows past what fits (12 um wide: arbitrary angles only where they fit)
        assert max(np.ptp(q[:, 0]), np.ptp(q[:, 1])) <= max(np.ptp(pts, axis=0).max(), 9_000) + 1


def test_partial_acquisitions_keep_a_frame_window():
    locs = _nucleus(2)
    cfg = LocAugmentConfig(partial=1, fraction=(0.25, 0.25), prefix=1, subsample=0, noise=0,
                           merge=0, split=0, rotate=0, flip=0)  # fmt: skip
    out = augment_localizations(locs, cfg, np.random.default_rng(0))
    span = locs.frame.max() - locs.frame.min() + 1
    assert out.frame.min() == locs.frame.min()
    assert out.frame.max() - out.frame.min() < 0.25 * span + 1
    assert 0.15 * locs.n < out.n < 0.35 * locs.n


def test_merging_repeated_localizations_gives_one_per_emitter():
    locs = _nucleus(3, n_emitters=400, blinks=3)
    merged = merge_repeats(locs, 30.0, 3)
    # chains as Picasso links them: a blink more than 30 nm from the one before starts a new
    # chain (~3 % of steps with 8 nm of scatter per blink)
    assert 400 <= merged.n <= 440
    assert np.median(merged.precision_nm) == pytest.approx(8 / np.sqrt(3), rel=1e-3)
    assert np.median(merged.photons) == pytest.approx(3000.0)
    assert merge_repeats(Localizations([0.0, 1e4], [0.0, 0.0], frame=[0, 1])).n == 2


def test_an_unaugmented_nucleus_renders_byte_identical_to_its_cached_render(tmp_path):
    from ainu_engine.render import RenderSpec, model_input
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.data import RenderCache, load_nuclei, read_manifest

    obs = Observation(locs_per_channel=4000)
    m = read_manifest(simulate_dataset(tmp_path / "d", n_per_class=2, observation=obs, seed=3))
    spec = RenderSpec(pixel_nm=150, sigma_nm=120, size=48)
    data = load_nuclei(m, spec, RenderCache(tmp_path / "c", device="cpu"), keep_sources=True)
    assert sorted(data.sources) == [0, 1, 2, 3]
    for i in range(len(data)):
        locs, s, roi = data.sources[int(data.owner[i])]
        again = model_input(locs, s, None, device="cpu", roi_nm=roi).items[0]
        assert again.tobytes() == np.asarray(data.images[i]).tobytes()
    rng = np.random.default_rng(0)
    assert data.augmented_batch(np.arange(4), NONE, rng).tobytes() == data.batch(
        np.arange(4)).tobytes()  # fmt: skip
    cfg = LocAugmentConfig(partial=1, fraction=(0.3, 0.3), subsample=0, noise=0, merge=0,
                           split=0, rotate=0, flip=0)  # fmt: skip
    aug = data.augmented_batch(np.arange(4), cfg, rng)
    assert aug.shape == (4, 1, 48, 48) and not np.array_equal(aug, data.batch(np.arange(4)))


def test_the_config_parses_and_refuses_nonsense():
    assert LocAugmentConfig.parse("default") == LocAugmentConfig()
    assert LocAugmentConfig.parse("merge=0,noise_nm=0-5").noise_nm == (0.0, 5.0)
    for bad in ("partial=2", "fraction=0.5-0.2", "colour=1", "keep=x"):
        with pytest.raises(ValueError):
            LocAugmentConfig.parse(bad)


def test_a_run_with_localization_augmentations_records_them(tmp_path):
    torch = pytest.importorskip("torch", reason="training needs the train extra (torch)")
    from ainu_engine.render import RenderSpec
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.checkpoint import load_checkpoint
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.train import TrainConfig, train

    torch.set_num_threads(2)
    obs = Observation(locs_per_channel=3000)
    m = read_manifest(simulate_dataset(tmp_path / "d", n_per_class=8, observation=obs, seed=4))
    cfg = TrainConfig(arch="small_cnn", epochs=2, patience=2, batch_size=4, folds=0, seed=0,
                      augment_localizations=LocAugmentConfig.parse("partial=0.8"))  # fmt: skip
    train(m, tmp_path / "run", spec=RenderSpec(pixel_nm=150, sigma_nm=120, size=32),
          cache=RenderCache(tmp_path / "c", device="cpu"), config=cfg)  # fmt: skip
    _, ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["provenance"]["augment_localizations"]["partial"] == 0.8
    assert TrainConfig.from_dict(ckpt["train_config"]).augment_localizations.partial == 0.8
    # the final model's calls on partial acquisitions of its validation nuclei, carried with it
    rows = ckpt["metrics"]["calibration"]["by_fraction"]
    assert [r["fraction"] for r in rows] == [0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
    assert rows[-1]["agree_with_full"] == 1.0 and all(0 <= r["accuracy"] <= 1 for r in rows)
    with pytest.raises(ValueError, match="patch mode"):
        TrainConfig(patch_size=32, augment_localizations=LocAugmentConfig())
