"""Preprocessing against Picasso, side by side (issue 35): the same tables, the same parameters.

- **Linking** (R = 30 nm, one dark frame) and the **filters** on 10⁶ localizations of blinking
  emitters: localizations per second, and whether the engine's groups are Picasso's
  (``picasso.postprocess._get_link_groups`` on the same sorted table).
- **RCC drift correction** of a field of five simulated H3 nuclei (≈10⁶ localizations) with a
  known smooth drift (250 nm in x, 150 nm in y over 60 000 frames): the rms error of the
  recovered trace (after its constant offset) and the time, for the engine and for Picasso's
  ``undrift`` (RCC) — on the table in 160 nm camera pixels as Picasso runs it (it renders the
  segments at one pixel), and on the table in 20 nm units (segments at the engine's 20 nm
  pixel) — in 10 segments each.
- **NeNA and FRC** on emitters of known precision (5, 10, 20 nm, three blinks on consecutive
  frames): the engine's estimates against Picasso's ``nena`` and ``frc`` (both random halves).

Picasso (``picassosr``) is not a dependency of the engine: run this in an environment that has
both (``pip install picassosr`` beside ``pip install -e .[cpu]``).

Goals (issue 35): linking and filters ≥ 10⁶ localizations/s; RCC of a 10⁶-localization field
in seconds; drift error ≤ 2 nm rms in x and y and no worse than Picasso's; NeNA and FRC within
±10 % of Picasso's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ._harness import in_scratch, measure, register

PIXEL_NM = 160.0  # camera pixel of the tables handed to Picasso (it works in pixels)
N_FRAMES = 60_000


def _blinking(n_emitters: int, sigma: float, seed: int, field_nm=40_000.0, blinks_mean=3.0,
              consecutive=False):  # fmt: skip
    """Emitters blinking geometric numbers of times, on consecutive frames or with a dark frame
    now and then; precision sigma."""
    from ainu_engine.io import Localizations

    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, field_nm, (n_emitters, 2))
    blinks = rng.geometric(1 / blinks_mean, n_emitters)
    n = int(blinks.sum())
    xy = np.repeat(centre, blinks, axis=0) + rng.normal(0, sigma, (n, 2))
    start = np.repeat(rng.integers(0, N_FRAMES - 50, n_emitters), blinks)
    # one frame after another, or now and then over a dark frame
    step = np.ones(n, np.int64) if consecutive else rng.integers(1, 3, n)
    first = np.repeat(np.cumsum(blinks) - blinks, blinks)  # each blink's emitter's first blink
    step[np.cumsum(blinks) - blinks] = 0
    cs = np.cumsum(step)
    frame = start + cs - cs[first]
    photons = rng.uniform(500, 5000, n)
    return Localizations(xy[:, 0], xy[:, 1], frame=frame, photons=photons,
                         precision_nm=np.full(n, sigma))  # fmt: skip


def _picasso_table(locs, unit_nm: float = PIXEL_NM):
    """The table as Picasso holds it: coordinates and precisions in pixels of ``unit_nm``."""
    import pandas as pd

    n = locs.n
    lp = (locs.precision_nm if locs.precision_nm is not None else np.full(n, 10.0)) / unit_nm
    df = pd.DataFrame({
        "frame": np.asarray(locs.frame, np.uint32), "x": locs.x_nm / unit_nm,
        "y": locs.y_nm / unit_nm, "photons": np.full(n, 1000.0, np.float32),
        "sx": np.full(n, 1.0, np.float32), "sy": np.full(n, 1.0, np.float32),
        "bg": np.full(n, 10.0, np.float32), "lpx": lp.astype(np.float32),
        "lpy": lp.astype(np.float32), "ellipticity": np.zeros(n, np.float32),
        "net_gradient": np.full(n, 1000.0, np.float32),
    })  # fmt: skip
    x1, y1 = float(df["x"].max()) + 2, float(df["y"].max()) + 2
    info = [{"Frames": int(df["frame"].max()) + 1, "Width": int(np.ceil(x1)),
             "Height": int(np.ceil(y1)), "Pixelsize": unit_nm}]  # fmt: skip
    return df, info


def _linking(quick: bool) -> tuple[dict, list, list]:
    from picasso import postprocess

    from ainu_engine.kernels import link_chains
    from ainu_engine.preprocess import Preprocess, filter_localizations, link

    locs = _blinking(60_000 if quick else 330_000, 10.0, 1)
    n = locs.n
    t_link = measure(lambda: link(locs, 30.0, 1), repeat=3)
    pre = Preprocess(precision_nm=(0, 20), photons=(800, 1e9), frames=(100, 59_000))
    t_filter = measure(lambda: filter_localizations(locs, pre), repeat=5)
    df, info = _picasso_table(locs)
    warm = df.iloc[:5000].copy()  # Picasso's Numba functions compiled before the clock starts
    postprocess.link(warm, info, r_max=30.0 / PIXEL_NM, max_dark_time=1)
    t0 = time.perf_counter()
    postprocess.link(df.copy(), info, r_max=30.0 / PIXEL_NM, max_dark_time=1)
    t_picasso = time.perf_counter() - t0
    order = np.argsort(locs.frame, kind="quicksort")
    f, x, y = locs.frame[order], locs.x_nm[order].astype(float), locs.y_nm[order].astype(float)
    ours = link_chains(f, x, y, np.zeros(n, np.int64), 30.0, 1)
    theirs = postprocess._get_link_groups(f, x, y, 30.0, 1, np.zeros(n, np.int32))
    same = bool(np.array_equal(ours, theirs))
    rate = n / t_link["median_s"]
    row = {"localizations": n, "link_s": t_link, "filters_s": t_filter,
           "picasso_link_s": t_picasso, "groups_identical_to_picasso": same,
           "groups": int(ours.max()) + 1}  # fmt: skip
    figures = [
        {"name": "link: localizations per second (R 30 nm, 1 dark frame)",
         "project": round(rate), "baseline": round(n / t_picasso),
         "baseline_name": "Picasso postprocess.link (average)",
         "ratio": t_picasso / t_link["median_s"],
         "groups_identical": same},
        {"name": "filters: localizations per second (precision, photons, frames)",
         "project": round(n / t_filter["median_s"])},
    ]  # fmt: skip
    goals = [{"goal": "linking and filters >= 1e6 localizations/s (CPU)",
              "measured": f"link {rate:.3g}/s, filters {n / t_filter['median_s']:.3g}/s",
              "met": rate >= 1e6 and n / t_filter["median_s"] >= 1e6},
             {"goal": "the engine's link groups are Picasso's on the same table",
              "measured": "identical" if same else "different", "met": same}]  # fmt: skip
    return row, figures, goals


def _true_drift(frame):
    f = np.asarray(frame, np.float64) / N_FRAMES
    return 250 * f - 80 * f**2, -150 * f + 60 * np.sin(np.pi * f)


def _rms(est_x, est_y, frames):
    tx, ty = _true_drift(frames)
    rx, ry = est_x - tx, est_y - ty
    return (float(np.sqrt(np.mean((rx - rx.mean()) ** 2))),
            float(np.sqrt(np.mean((ry - ry.mean()) ** 2))))  # fmt: skip


def _field(quick: bool):
    from ainu_engine.io import Localizations
    from ainu_engine.simulate import Observation, simulate_nucleus

    parts = []
    for k in range(2 if quick else 5):
        centre = (8000 + 16000 * (k % 3), 8000 + 16000 * (k // 3))
        s = simulate_nucleus("hiPSC", rng=np.random.default_rng(10 + k), channels=("h3",),
                             observation=Observation(locs_per_channel=2e5), centre_nm=centre)
        parts.append(Localizations(s.x_nm, s.y_nm, frame=s.frame, precision_nm=s.precision_nm))
    locs = Localizations.concat(parts)
    tx, ty = _true_drift(locs.frame)
    return Localizations(locs.x_nm + tx, locs.y_nm + ty, frame=locs.frame,
                         precision_nm=locs.precision_nm)  # fmt: skip


def _picasso_rcc(locs, unit_nm: float):
    """Picasso's ``undrift`` (RCC, 6000-frame segments) on the table in pixels of ``unit_nm``:
    it renders the segments at one pixel, so a finer unit is a finer render."""
    from picasso import postprocess

    df, info = _picasso_table(locs, unit_nm)
    drift, _ = postprocess.undrift(df, info, 6000, display=False,
                                   segmentation_callback=lambda i: None,
                                   rcc_callback=lambda i: None)  # fmt: skip
    return drift["x"].to_numpy() * unit_nm, drift["y"].to_numpy() * unit_nm


def _drift(quick: bool) -> tuple[dict, list, list]:
    from ainu_engine.preprocess import estimate_drift

    locs = _field(quick)
    t0 = time.perf_counter()
    d = estimate_drift(locs, segment_frames=6000)
    t_ours = time.perf_counter() - t0
    frames = np.arange(d.first_frame, d.last_frame + 1)
    ex, ey = d.at(frames)
    ours = _rms(ex, ey, frames)
    runs = {"engine": {"seconds": t_ours, "rms_nm": ours, "segments": d.details["segments"],
                       "pairs_used": d.details["pairs_used"]}}  # fmt: skip
    for name, unit in (("picasso_undrift_160nm", PIXEL_NM), ("picasso_undrift_20nm", 20.0)):
        t0 = time.perf_counter()
        try:
            px_x, px_y = _picasso_rcc(locs, unit)
            fr = np.arange(len(px_x))
            runs[name] = {"seconds": time.perf_counter() - t0, "rms_nm": _rms(px_x, px_y, fr)}
        except Exception as err:  # noqa: BLE001 - reported, not hidden
            runs[name] = {"seconds": time.perf_counter() - t0, "error": str(err)[:300]}
    best = min((r["rms_nm"] for k, r in runs.items() if k != "engine" and "rms_nm" in r),
               key=max, default=None)  # fmt: skip
    figures = [{"name": f"RCC of a {locs.n:,}-localization field: seconds",
                "project": round(t_ours, 2),
                "baseline": round(runs["picasso_undrift_160nm"].get("seconds", float("nan")), 2),
                "baseline_name": "Picasso undrift (RCC, 10 segments, 160 nm pixels)",
                "ratio": runs["picasso_undrift_160nm"].get("seconds", float("nan")) / t_ours}]
    for name, r in runs.items():
        if "rms_nm" in r:
            figures.append({"name": f"drift error rms x, y (nm): {name}",
                            "project": [round(v, 2) for v in r["rms_nm"]]})  # fmt: skip
    goals = [
        {"goal": "RCC recovers a known drift within 2 nm rms in x and y",
         "measured": f"{ours[0]:.2f}, {ours[1]:.2f} nm", "met": max(ours) <= 2.0},
        {"goal": "RCC at least as accurate as Picasso's",
         "measured": f"engine {max(ours):.2f} nm, best Picasso "
                     f"{'-' if best is None else f'{max(best):.2f}'} nm",
         "met": best is None or max(ours) <= max(best) + 0.05},
        {"goal": "RCC of a 1e6-localization field in seconds, not minutes",
         "measured": f"{t_ours:.1f} s for {locs.n:,}", "met": t_ours < 60},
    ]  # fmt: skip
    return {"localizations": locs.n, "drift": "250 nm x, 150 nm y over 60000 frames",
            "runs": runs}, figures, goals  # fmt: skip


def _resolution(quick: bool) -> tuple[dict, list, list]:
    from picasso import postprocess

    from ainu_engine.preprocess import frc, nena

    rows, figures, ok = [], [], True
    for sigma in (5.0, 10.0, 20.0):
        locs = _blinking(8000 if quick else 20_000, sigma, 7, field_nm=10_000.0,
                         consecutive=True)  # fmt: skip
        df, info = _picasso_table(locs)
        t0 = time.perf_counter()
        ours_n = nena(locs).value_nm
        ours_f = frc(locs, split="random").value_nm
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, s_px = postprocess.nena(df.copy(), info)
        view = ((float(df["y"].min()), float(df["x"].min())),
                (float(df["y"].max()), float(df["x"].max())))  # fmt: skip
        theirs_f = postprocess.frc(df.copy(), info, view)["resolution"]
        t_theirs = time.perf_counter() - t0
        theirs_n = float(s_px) * PIXEL_NM
        theirs_f = None if theirs_f is None else float(theirs_f)
        agree_n = abs(ours_n / theirs_n - 1) <= 0.10
        agree_f = theirs_f is not None and abs(ours_f / theirs_f - 1) <= 0.10
        ok &= agree_n and agree_f
        rows.append({"sigma_nm": sigma, "localizations": locs.n, "nena_nm": ours_n,
                     "picasso_nena_nm": theirs_n, "frc_nm": ours_f, "picasso_frc_nm": theirs_f,
                     "seconds": t_ours, "picasso_seconds": t_theirs})  # fmt: skip
        figures.append({"name": f"NeNA (nm), true precision {sigma:g} nm",
                        "project": round(ours_n, 2), "baseline": round(theirs_n, 2),
                        "baseline_name": "Picasso nena"})  # fmt: skip
        figures.append({"name": f"FRC resolution (nm), precision {sigma:g} nm, random halves",
                        "project": round(ours_f, 1),
                        "baseline": None if theirs_f is None else round(theirs_f, 1),
                        "baseline_name": "Picasso frc"})  # fmt: skip
    goals = [{"goal": "NeNA and FRC within +-10 % of Picasso's on data of known precision",
              "measured": "; ".join(f"{r['sigma_nm']:g} nm: NeNA {r['nena_nm']:.2f} vs "
                                    f"{r['picasso_nena_nm']:.2f}, FRC {r['frc_nm']:.1f} vs "
                                    f"{r['picasso_frc_nm']}" for r in rows),
              "met": bool(ok)}]  # fmt: skip
    return {"runs": rows}, figures, goals


@register(
    "preprocess",
    "linking, filters, RCC drift correction, NeNA and FRC against Picasso on the same tables, CPU",
)
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    return in_scratch("ainu-bench-preprocess-", _run, quick=quick)


def _run(tmp: Path, *, quick: bool) -> dict:
    from importlib import metadata

    link_row, f1, g1 = _linking(quick)
    drift_row, f2, g2 = _drift(quick)
    res_row, f3, g3 = _resolution(quick)
    return {
        "inputs": {"link": {"radius_nm": 30, "dark_frames": 1}, "camera_pixel_nm": PIXEL_NM,
                   "picasso": metadata.version("picassosr")},  # fmt: skip
        "baseline": "Picasso (picassosr) on the same tables and parameters",
        "linking": link_row,
        "drift": drift_row,
        "resolution": res_row,
        "figures": f1 + f2 + f3,
        "goals": g1 + g2 + g3,
    }
