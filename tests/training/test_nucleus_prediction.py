"""Training and export of the nucleus-prediction generator (training.nucleus_prediction), and its
files through the checkpoint owner (training.checkpoint: plain data, never a pickle load)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ainu_engine.errors import InputError
from ainu_engine.simulate import ActinConfig, simulate_tiles

pytest.importorskip("torch")

from ainu_engine.training.checkpoint import (  # noqa: E402
    GENERATOR_FORMAT,
    TRAINING_STATE_FORMAT,
    read_checkpoint,
)


def test_generator_training_resumes_from_its_checkpoint(tmp_path):
    """3 iterations, then the same run asked for 5: it resumes at 3 and its history continues;
    a per-sample crop and flip (not one for the whole run)."""
    from ainu_engine.training.nucleus_prediction import GeneratorConfig, _batch, train_generator

    simulate_tiles(tmp_path / "cells", n_tiles=3, seed=0,
                   config=ActinConfig(tile_um=26.24, cells=(1, 2)))  # fmt: skip
    cfg = GeneratorConfig(size=32, iterations=3, batch_size=1, checkpoint_every=1, device="cpu")
    s1 = train_generator(tmp_path / "cells", tmp_path / "run", cfg)
    assert s1["resumed_from"] == 0 and (tmp_path / "run" / "checkpoint.pt").is_file()
    s2 = train_generator(tmp_path / "cells", tmp_path / "run",
                         GeneratorConfig(**{**cfg.__dict__, "iterations": 5}))  # fmt: skip
    assert s2["resumed_from"] == 3
    with open(tmp_path / "run" / "history.csv") as fh:
        assert [int(r.split(",")[0]) for r in fh.read().splitlines()[1:]] == [1, 2, 3, 4, 5]
    rng = np.random.default_rng(0)
    a = [np.arange(3 * 64 * 64, dtype=np.float32).reshape(3, 64, 64)] * 8
    xb, yb = _batch(a, a, list(range(8)), 16, rng)
    assert len({x.tobytes() for x in xb}) > 1 and np.array_equal(xb, yb)


def test_a_zero_gan_weight_trains_the_generator_on_l1_alone(tmp_path):
    """lambda_g = 0: no discriminator steps (loss_d stays 0); with the GAN they run from the
    first iteration, or after gan_start iterations on L1 alone."""

    from ainu_engine.training.nucleus_prediction import GeneratorConfig, train_generator

    simulate_tiles(tmp_path / "cells", n_tiles=2, seed=1,
                   config=ActinConfig(tile_um=26.24, cells=(1, 2)))  # fmt: skip
    for lg, start, run in ((0.0, 0, "l1"), (1.0, 0, "gan"), (1.0, 2, "warm-up")):
        cfg = GeneratorConfig(size=32, iterations=3, batch_size=2, lambda_g=lg, gan_start=start,
                              device="cpu")  # fmt: skip
        train_generator(tmp_path / "cells", tmp_path / run, cfg)
        # the generator is TFill-Coarse in every case (not the U-Net baseline)
        ck = read_checkpoint(tmp_path / run / "generator.pt", formats=(GENERATOR_FORMAT,))
        assert "embed_dim" in ck["config"], ck["config"]
        with open(tmp_path / run / "history.csv") as fh:
            d = [float(r["loss_d"]) for r in csv.DictReader(fh)]
        on = [x != 0.0 for x in d]
        assert on == {"l1": [False] * 3, "gan": [True] * 3, "warm-up": [False, False, True]}[run]
    with pytest.raises(ValueError, match="gan_start"):
        GeneratorConfig(gan_start=-1)


def test_the_unet_baseline_trains_and_exports(tmp_path):
    from ainu_engine.training.nucleus_prediction import (
        GeneratorConfig,
        export_generator,
        train_generator,
    )

    simulate_tiles(tmp_path / "cells", n_tiles=2, seed=1,
                   config=ActinConfig(tile_um=26.24, cells=(1, 2)))  # fmt: skip
    cfg = GeneratorConfig(model="unet", size=32, iterations=2, batch_size=2, device="cpu")
    s = train_generator(tmp_path / "cells", tmp_path / "run", cfg)
    assert s["iterations"] == 2
    r = export_generator(tmp_path / "run" / "generator.pt", tmp_path / "u.onnx", size=32,
                         pixel_um=0.41)  # fmt: skip
    assert r["max_abs_diff"] <= 1e-4
    with pytest.raises(ValueError, match="tfill or unet"):
        GeneratorConfig(model="gan")




class _Code:
    """An object whose unpickling would run code of the file's choosing."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_generator_files_are_plain_data_and_pickles_are_refused(tmp_path):
    """generator.pt and checkpoint.pt are read back by the checkpoint owner with
    weights_only=True; a file that holds a pickled object is refused in one line."""
    import torch

    from ainu_engine.training.checkpoint import load_generator
    from ainu_engine.training.nucleus_prediction import GeneratorConfig, train_generator

    simulate_tiles(tmp_path / "cells", n_tiles=2, seed=1,
                   config=ActinConfig(tile_um=26.24, cells=(1, 2)))  # fmt: skip
    cfg = GeneratorConfig(size=32, iterations=2, batch_size=1, model="unet", device="cpu")
    train_generator(tmp_path / "cells", tmp_path / "run", cfg)
    state = read_checkpoint(tmp_path / "run" / "checkpoint.pt", formats=(TRAINING_STATE_FORMAT,))
    assert state["iteration"] == 2 and len(state["history"]) == 2
    g, ck = load_generator(tmp_path / "run" / "generator.pt")
    assert ck["format"] == GENERATOR_FORMAT and ck["run"]["model"] == "unet" and not g.training
    bad = tmp_path / "bad.pt"
    torch.save({"format": GENERATOR_FORMAT, "config": _Code()}, bad)
    with pytest.raises(InputError, match="pickled Python objects") as e:
        load_generator(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="not an ainu-engine checkpoint"):
        load_generator(tmp_path / "run" / "checkpoint.pt")  # a training state, not a generator
