"""Live classification: the cost of one update — add one frame's worth of localizations, then
call — for a simulated 4·10^5-localization nucleus replayed in frame order, at 10 %, 50 % and
100 % of its acquisition; baseline: re-rendering every localization added so far (the raw KDE
``render`` computes from scratch), which is what a session without the running render would do.

Models: the bundled 64 px example model, and DenseNet-121 at 512 px (random weights: the time
does not depend on what they learned) exported like ``ainu-engine export``.

Goals (issue "Live classification"): incremental render cost independent of the localizations
already added; >= 10x faster than a full re-render at 50 %. Issue 38: the call (render finish,
field and QC checks, input statistics, inference) at 100 % within 1.5x of the call at 10 %.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ._harness import measure, register

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
FRACTIONS = (0.1, 0.5, 1.0)


def _nucleus(n: int, n_frames: int, seed: int = 0):
    from ainu_engine.io import Localizations
    from ainu_engine.simulate import Observation, simulate_nucleus

    nu = simulate_nucleus(
        "hiPSC",
        rng=np.random.default_rng(seed),
        channels=("polII",),
        observation=Observation(locs_per_channel=n, locs_spread=0.0),
    )
    rng = np.random.default_rng(seed + 1)
    frame = np.sort(rng.integers(0, n_frames, nu.x_nm.size))  # uniform over the acquisition
    return Localizations(nu.x_nm, nu.y_nm, frame=frame, channel=np.zeros(nu.x_nm.size, np.int32))


def _densenet(tmp: Path) -> Path:
    """DenseNet-121 at 512 px, one channel, random weights with calibrated batch norm."""
    import torch

    from ainu_engine.render import RenderSpec
    from ainu_engine.training.checkpoint import save_checkpoint
    from ainu_engine.training.export import export_onnx
    from ainu_engine.training.models import create_model

    torch.manual_seed(0)
    m = create_model("densenet121", in_chans=1, num_classes=2)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.rand(2, 1, 512, 512))
    m.eval()
    save_checkpoint(
        tmp / "best.pt", m, classes=["hiPSC", "somatic"],
        render_spec=RenderSpec(pixel_nm=16.0, sigma_nm=20.0, size=512),
        channel_names=["polII"], input_size=512, preprocessing={"mode": "image"},
        train_config={}, metrics={}, training_stats={},
        provenance={"training_data": "random weights (benchmark)"}, history=[],
        samples=torch.rand(2, 1, 512, 512).numpy(),
    )  # fmt: skip
    export_onnx(tmp / "best.pt", tmp / "model.onnx", atol=1e-3)
    return tmp / "model.onnx"


def _percentiles(times: list[float]) -> dict:
    a = np.asarray(times) * 1000.0
    p50, p99 = (round(float(np.percentile(a, q)), 3) for q in (50, 99))
    return {"p50_ms": p50, "p99_ms": p99, "n": len(times)}


def _full_render(so_far, spec, p):
    """The baseline: the raw KDE of every localization so far, on the grid render() uses."""
    from ainu_engine.kernels import render_kde_cpu
    from ainu_engine.render import render_grid

    x, y = so_far.x_nm, so_far.y_nm
    origin, h, w = render_grid(
        [x.min(), y.min()], [x.max(), y.max()], p, spec.truncate * spec.sigma_nm
    )
    sigma, chan = np.array([spec.sigma_nm]), np.zeros(so_far.n, np.int32)

    def full():
        render_kde_cpu(x, y, sigma, chan, shape=(1, h, w), origin_nm=origin, pixel_nm=p,
                       truncate=spec.truncate)  # fmt: skip

    return full


def _one_model(name: str, model: Path, locs, per_frame: int, *, adds: int, calls: int) -> dict:
    from ainu_engine import Classifier
    from ainu_engine.live import LiveNucleus
    from ainu_engine.render import render_spec_for

    out = {"model": name, "levels": []}
    with Classifier.load(model, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        spec = render_spec_for(clf.info.render_spec, clf.info.preprocessing)
        p = spec.resolved_pixel_nm(None)
        with LiveNucleus(clf) as live:
            done = 0
            for frac in FRACTIONS:
                target = int(frac * locs.n) - (adds + calls) * per_frame
                if target > done:
                    live.add(locs[done:target])
                    done = target
                live.call()  # warm: compaction, first inference at this size
                add_t = []
                for _ in range(adds):  # one frame's worth at a time
                    t0 = time.perf_counter()
                    live.add(locs[done : done + per_frame])
                    add_t.append(time.perf_counter() - t0)
                    done += per_frame
                upd_t, call_t = [], []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    live.add(locs[done : done + per_frame])
                    t1 = time.perf_counter()
                    live.call()
                    t2 = time.perf_counter()
                    done += per_frame
                    upd_t.append(t2 - t0)
                    call_t.append(t2 - t1)
                full_t = measure(_full_render(locs[:done], spec, p), repeat=3, warmup=1)
                add = _percentiles(add_t)
                out["levels"].append({
                    "fraction": frac,
                    "n_localizations": int(done),
                    "add_one_frame": add,
                    "update_add_and_call": _percentiles(upd_t),
                    "call_only": _percentiles(call_t),
                    "full_rerender_ms": round(full_t["median_s"] * 1000.0, 3),
                    "full_vs_incremental": round(full_t["median_s"] * 1000.0 / add["p50_ms"], 1),
                })  # fmt: skip
    return out


@register("live", "live sessions: add one frame + call latency; incremental vs full re-render")
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    n = 40_000 if quick else 400_000
    n_frames = 20_000
    per_frame = max(1, n // n_frames)
    locs = _nucleus(n, n_frames)
    models = [("bundled small_cnn 64 px", BUNDLED, 200, 20)]
    with tempfile.TemporaryDirectory() as tmp:
        if not quick:
            models.append(("densenet121 512 px", _densenet(Path(tmp)), 200, 10))
        results = [
            _one_model(name, m, locs, per_frame, adds=a, calls=c) for name, m, a, c in models
        ]
    figures, goals = [], []
    for r in results:
        for lv in r["levels"]:
            add = lv["add_one_frame"]
            figures.append({
                "name": f"{r['model']}: add one frame ({per_frame} locs) at {lv['fraction']:.0%}",
                "project": f"{add['p50_ms']} ms p50 / {add['p99_ms']} ms p99",
                "baseline": f"{lv['full_rerender_ms']} ms",
                "baseline_name": "raw KDE of all localizations so far",
                "ratio": lv["full_vs_incremental"],
                "update_p50_ms": lv["update_add_and_call"]["p50_ms"],
                "update_p99_ms": lv["update_add_and_call"]["p99_ms"],
            })  # fmt: skip
        lv = {x["fraction"]: x for x in r["levels"]}
        flat = lv[1.0]["add_one_frame"]["p50_ms"] / max(lv[0.1]["add_one_frame"]["p50_ms"], 1e-9)
        goals.append({"goal": f"{r['model']}: incremental add at 100 % within 2x of at 10 %",
                      "measured": f"{flat:.2f}x", "met": bool(flat <= 2.0)})  # fmt: skip
        call = lv[1.0]["call_only"]["p50_ms"] / max(lv[0.1]["call_only"]["p50_ms"], 1e-9)
        goals.append({"goal": f"{r['model']}: the call at 100 % within 1.5x of at 10 %",
                      "measured": f"{lv[0.1]['call_only']['p50_ms']} -> "
                                  f"{lv[1.0]['call_only']['p50_ms']} ms p50 ({call:.2f}x)",
                      "met": bool(call <= 1.5)})  # fmt: skip
        goals.append({"goal": f"{r['model']}: >= 10x faster than a full re-render at 50 %",
                      "measured": f"{lv[0.5]['full_vs_incremental']}x",
                      "met": bool(lv[0.5]["full_vs_incremental"] >= 10)})  # fmt: skip
    return {
        "inputs": {
            "n_localizations": n,
            "n_frames": n_frames,
            "per_frame": per_frame,
            "fractions": list(FRACTIONS),
        },  # fmt: skip
        "baseline": "re-rendering (raw KDE) every localization added so far, as a session "
        "without the running render must on each update",
        "figures": figures,
        "goals": goals,
        "models": results,
    }
