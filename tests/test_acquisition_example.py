"""examples/acquisition (issue 19): the simulated camera's frames have the noise model it states,
and — where Picasso is installed (the acquisition extra) — the adaptive loop runs, its nuclei
are flagged unfamiliar (the bundled model was trained on the simulator's tables, not on this
chain's), and so it never stops one early (issue 33)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "acquisition"
sys.path.insert(0, str(EXAMPLE))


def test_the_camera_frames_follow_their_noise_model():
    from camera import BlinkingNucleus

    cam = BlinkingNucleus("somatic", seed=1, localizations=600, n_frames=3000)
    empty = np.flatnonzero(np.diff(cam._starts) == 0)[:20]
    frames = np.stack([cam.frame(int(k)) for k in empty]).astype(np.float64)
    # background only: counts = (Poisson(20) + N(0, 1.6)) / 0.5 + 100
    assert frames.mean() == pytest.approx(100 + 20 / 0.5, rel=0.01)
    assert frames.std() == pytest.approx(np.sqrt(20 + 1.6**2) / 0.5, rel=0.05)
    busy = int(np.argmax(np.diff(cam._starts)))
    lo, hi = cam._starts[busy], cam._starts[busy + 1]
    signal = (cam.frame(busy).astype(np.float64) - 100) * 0.5 - 20  # photons above background
    assert signal.sum() == pytest.approx(cam._photons[lo:hi].sum(), rel=0.1)


def test_the_adaptive_loop_never_stops_on_the_chains_unfamiliar_nuclei():
    pytest.importorskip("picasso", reason="needs Picasso's localizer (the acquisition extra)")
    from camera import BlinkingNucleus
    from run import Acquisition, run_plain

    from ainu_engine import Classifier
    from ainu_engine.live import StopRule

    model = EXAMPLE.parents[1] / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        cam = BlinkingNucleus("hiPSC", seed=500, localizations=24_000, n_frames=6000)
        acq = Acquisition(clf, cam, StopRule.parse("p=0.8,m=3,min=3000"), 200)
        run_plain(acq, 6000)
        assert acq.stopped_at is None and acq.first == 6000
        assert "unfamiliar" in acq.call.qc and acq.call.ood_reason.startswith("median precision")
        assert "never stops on a nucleus unlike" in acq.call.stop.reason
