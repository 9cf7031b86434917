"""Adaptive acquisition: image each nucleus only until its call is firm.

A simulated camera (``camera.py``: blinking molecules of a simulated nucleus, Gaussian PSF,
Poisson + read noise) is driven through pymmcore-plus' acquisition engine (``UniMMCore`` with the
camera as a Python device, an MDA of ``--frames`` frames, ``frameReady`` events) — or a plain loop
with ``--plain``. Every ``--batch`` frames are localized with Picasso (``localizer.py``) and
added to an ``ainu_engine.live.LiveNucleus``; when the stop rule says the call is firm, the
acquisition is cancelled (``mda.cancel()``). For the comparison, the frames not acquired are then
generated and localized offline, and the call on the whole acquisition is made.

    python examples/acquisition/run.py \
        --model examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx

Needs the ``acquisition`` extra (picassosr, pymmcore-plus) besides ``cpu``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from camera import BlinkingNucleus  # noqa: E402
from localizer import localize  # noqa: E402


class Acquisition:
    """The part of an acquisition program that talks to ainu-engine: frames in, localizations
    to the live session, a decision out."""

    def __init__(self, clf, cam: BlinkingNucleus, rule, batch: int) -> None:
        from ainu_engine.live import LiveNucleus

        self.cam, self.batch = cam, batch
        self.live = LiveNucleus(clf, stop_rule=rule)
        self.frames: list[np.ndarray] = []
        self.first = 0
        self.stopped_at: int | None = None
        self.call = None
        self.locs: list[dict] = []

    def on_frame(self, image: np.ndarray, index: int) -> bool:
        """One frame from the camera; True when the acquisition should stop."""
        self.frames.append(np.asarray(image))
        if len(self.frames) < self.batch:
            return False
        return self.flush(index)

    def flush(self, index: int) -> bool:
        if not self.frames:
            return False
        found = localize(np.stack(self.frames), self.first, self.cam.camera_info(),
                         pixel_nm=self.cam.pixel_nm, origin_nm=self.cam.origin_nm)  # fmt: skip
        self.locs.append(found)
        self.first += len(self.frames)
        self.frames = []
        if len(found["x_nm"]):
            self.live.add(_table(found))
        if self.live.n_localizations == 0:
            return False
        self.call = self.live.call()
        if self.call.stop.stop and self.stopped_at is None:
            self.stopped_at = index + 1
            return True
        return False


def _table(found: dict):
    """The localizer's columns as a Localizations table (precision and photons included: the
    out-of-distribution score compares them with the model's training nuclei)."""
    from ainu_engine.io import Localizations

    return Localizations(found["x_nm"], found["y_nm"], frame=found["frame"],
                         precision_nm=found["precision_nm"], photons=found["photons"])  # fmt: skip


def run_plain(acq: Acquisition, n_frames: int) -> None:
    for k in range(n_frames):
        if acq.on_frame(acq.cam.frame(k), k):
            return
    acq.flush(n_frames - 1)


def run_pymmcore(acq: Acquisition, n_frames: int) -> None:
    """The same loop through pymmcore-plus' MDA engine with the camera as a Python device."""
    from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore
    from useq import MDASequence

    cam = acq.cam

    class Camera(SimpleCameraDevice):
        _exposure = 10.0
        _k = 0

        def sensor_shape(self):
            return cam.shape

        def dtype(self):
            return np.uint16

        def get_exposure(self):
            return self._exposure

        def set_exposure(self, exposure):
            self._exposure = float(exposure)

        def snap(self, buffer):
            buffer[:] = cam.frame(min(Camera._k, cam.n_frames - 1))
            Camera._k += 1
            return {}

    core = UniMMCore()
    core.loadPyDevice("Camera", Camera())
    core.initializeDevice("Camera")
    core.setCameraDevice("Camera")
    core.setAutoShutter(False)  # no shutter device in this configuration
    # one snap per frame: the frameReady handler localizes a batch now and then, and a sequenced
    # acquisition would time out waiting for the camera meanwhile
    core.mda.engine.use_hardware_sequencing = False

    @core.mda.events.frameReady.connect
    def _frame(image, event, meta):
        if acq.on_frame(image, int(event.index.get("t", 0))):
            core.mda.cancel()

    core.mda.run(MDASequence(time_plan={"interval": 0, "loops": n_frames}))
    if acq.stopped_at is None:
        acq.flush(n_frames - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--nuclei", type=int, default=4)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=200, help="frames localized together")
    ap.add_argument("--stop", default="p=0.8,m=3,min=3000")
    ap.add_argument("--plain", action="store_true", help="a plain loop instead of pymmcore-plus")
    ap.add_argument("--out", type=Path, default=Path("acquisition-out.json"))
    ap.add_argument("--save-locs", type=Path, default=None,
                    help="also write each nucleus's whole acquisition as DIR/TRUTH_K.parquet")
    args = ap.parse_args()
    from ainu_engine import Classifier
    from ainu_engine.io import Localizations
    from ainu_engine.live import StopRule

    rule = StopRule.parse(args.stop)
    warm = BlinkingNucleus("hiPSC", seed=1, n_frames=50)  # compile Picasso's kernels first
    localize(np.stack([warm.frame(f) for f in range(50)]), 0, warm.camera_info(), pixel_nm=160.0)
    rows = []
    with Classifier.load(
        args.model, backend="onnxruntime", device="cpu", render_device="cpu"
    ) as clf:
        for k in range(args.nuclei):
            label = ("hiPSC", "somatic")[k % 2]
            cam = BlinkingNucleus(label, seed=500 + k, localizations=24_000, n_frames=args.frames)
            acq = Acquisition(clf, cam, rule, args.batch)
            t0 = time.perf_counter()
            (run_plain if args.plain else run_pymmcore)(acq, args.frames)
            t_live = time.perf_counter() - t0
            used = acq.first
            # the rest of the acquisition, offline, for the call on all of it
            rest = [cam.frame(f) for f in range(used, args.frames)]
            for s in range(0, len(rest), args.batch):
                acq.locs.append(localize(np.stack(rest[s : s + args.batch]), used + s,
                                         cam.camera_info(), pixel_nm=cam.pixel_nm,
                                         origin_nm=cam.origin_nm))  # fmt: skip
            whole = Localizations.concat([_table(d) for d in acq.locs])
            allx = whole.x_nm
            full = clf.classify(whole)
            if args.save_locs is not None:
                from ainu_engine.io import write

                args.save_locs.mkdir(parents=True, exist_ok=True)
                write(whole, args.save_locs / f"{label}_{k}.parquet")
            row = {
                "nucleus": k, "truth": label, "frames": args.frames, "frames_used": used,
                "fraction": used / args.frames, "stopped": acq.stopped_at is not None,
                "call_at_stop": acq.call.label,
                "p_at_stop": acq.call.probabilities.get(acq.call.label),
                "localizations_at_stop": acq.live.n_localizations, "call_full": full.label,
                "localizations_full": int(allx.size), "same_call": acq.call.label == full.label,
                "seconds_live": round(t_live, 1),
                "stop_reason": acq.call.stop.reason, "ood_score_full": full.ood_score,
                "unfamiliar_full": "unfamiliar" in full.qc, "ood_reason_full": full.ood_reason,
                "median_precision_nm": float(np.median(whole.precision_nm)),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            acq.live.close()
    summary = {
        "driver": "plain loop" if args.plain else "pymmcore-plus UniMMCore MDA",
        "stop_rule": args.stop, "batch_frames": args.batch, "nuclei": rows,
        "mean_fraction_of_frames": float(np.mean([r["fraction"] for r in rows])),
        "same_call_as_full": sum(r["same_call"] for r in rows),
        "correct_at_stop": sum(r["call_at_stop"] == r["truth"] for r in rows),
        "correct_full": sum(r["call_full"] == r["truth"] for r in rows),
        "unfamiliar_full": sum(r["unfamiliar_full"] for r in rows),
    }  # fmt: skip
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "nuclei"}))


if __name__ == "__main__":
    main()
