"""``ainu-engine serve`` under load, on loopback: 1, 4, 16 and 64 concurrent clients sending
simulated nuclei (Arrow IPC bodies) to a real server process, with dynamic batching on and off;
throughput, p50/p90/p99 latency, errors and dropped requests (every request must be answered:
200, or 503 when the queue is full, which the client retries). Baseline: the in-process
``Classifier`` on the same nuclei (``classify_batch``, one batch per 16) — what the service costs.

Method like perf_analyzer: at each concurrency, measurement windows of ``WINDOW_S`` seconds
until two successive windows agree within 10 % (at most 4), reporting the last.

Goals (issue "Embedding"): at 16 clients >= 0.8x the in-process batch throughput; p99 at
concurrency 1 <= in-process p99 + max delay + 10 ms. GPU goal (batching >= 2x throughput on a
GPU): unverified unless run on one.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ._harness import register

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
WINDOW_S = 6.0
MAX_DELAY_MS = 5.0
#: passes of the in-process baseline over the nuclei (its median is the baseline)
IN_PROCESS_PASSES = 5


def _nuclei(n: int, seed: int = 5):
    from ainu_engine.io import Localizations
    from ainu_engine.simulate import Observation, simulate_nucleus

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        nu = simulate_nucleus(("hiPSC", "somatic")[k % 2], rng=rng, channels=("polII",),
                              observation=Observation(locs_per_channel=12000))  # fmt: skip
        out.append(Localizations(nu.x_nm, nu.y_nm))
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str):
    from ainu_engine.client import Client, ServiceError

    port = _port()
    cmd = [sys.executable, "-m", "ainu_engine", "serve", "--model", str(MODEL), "--port",
           str(port), "--device", "cpu", *args]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            Client(url, retries=0).request("GET", "/readyz")
            return proc, url
        except ServiceError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not become ready")


def _cpu_s(proc) -> float | None:
    """CPU seconds (user + system) of a process and its threads so far (None: unknown)."""
    if proc is None:
        return None
    t = proc.cpu_times()
    return t.user + t.system


def _window(url: str, bodies: list[bytes], clients: int, seconds: float, server=None) -> dict:
    """One window of ``clients`` threads posting nuclei; with ``server`` (a psutil.Process), the
    cores the server and the clients (this process) used in it."""
    from ainu_engine.client import Client, ServiceError

    lat, errors = [], []
    full0 = _queue_full(url)
    cpu0, srv0 = time.process_time(), _cpu_s(server)
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def run(k: int):
        c = Client(url, retries=20)
        i = k
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                c.request("POST", "/v1/classify", bodies[i % len(bodies)],
                          content_type="application/octet-stream")  # fmt: skip
                with lock:
                    lat.append(time.perf_counter() - t0)
            except ServiceError as err:
                with lock:
                    errors.append(err.status)
            i += clients
        c.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cores = {"client_cores": round((time.process_time() - cpu0) / wall, 2)}
    if server is not None:
        cores["server_cores"] = round((_cpu_s(server) - srv0) / wall, 2)
    a = np.asarray(lat) * 1000.0
    pct = {
        f"p{q}_ms": round(float(np.percentile(a, q)), 2) if a.size else None for q in (50, 90, 99)
    }
    return {"requests": len(lat), "errors": len(errors), "nuclei_per_s": round(len(lat) / wall, 2),
            **pct, "answered_503_then_retried": _queue_full(url) - full0, **cores}  # fmt: skip


def _queue_full(url: str) -> int:
    """The server's count of requests answered 503 (queue full), from /metrics."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("ainu_queue_full_total "):
                return int(float(line.split()[1]))
    return 0


def _level(url, bodies, clients, server=None) -> dict:
    prev = None
    for k in range(4):
        w = _window(url, bodies, clients, WINDOW_S, server)
        w["windows"] = k + 1
        if prev and abs(w["nuclei_per_s"] - prev["nuclei_per_s"]) <= 0.1 * prev["nuclei_per_s"]:
            return w
        prev = w
    return w


def _in_process(nuclei) -> dict:
    from ainu_engine import Classifier

    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        clf.classify_batch(nuclei[:4])
        rates, cores = [], []
        for _ in range(IN_PROCESS_PASSES):  # the median pass: one pass is a fraction of a second
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, len(nuclei), 16):
                clf.classify_batch(nuclei[i : i + 16])
            wall = time.perf_counter() - t0
            rates.append(len(nuclei) / wall)
            cores.append((time.process_time() - c0) / wall)
        batch_rate = float(np.median(rates))
        one = []
        for nu in nuclei:
            t1 = time.perf_counter()
            clf.classify(nu)
            one.append(time.perf_counter() - t1)
    a = np.asarray(one) * 1000.0
    return {"batch_nuclei_per_s": round(batch_rate, 2),
            "batch_nuclei_per_s_passes": [round(r, 2) for r in rates],
            "batch_cores": round(float(np.median(cores)), 2),
            "single_p50_ms": round(float(np.percentile(a, 50)), 2),
            "single_p99_ms": round(float(np.percentile(a, 99)), 2)}  # fmt: skip


@register("serve", "ainu-engine serve on loopback: 1-64 clients, batching on/off, vs in process")
def run(*, device: str = "cpu", quick: bool = False) -> dict:
    from ainu_engine.client import _arrow_bytes

    global WINDOW_S
    if quick:
        WINDOW_S = 1.0
    nuclei = _nuclei(8 if quick else 48)
    bodies = [_arrow_bytes(n) for n in nuclei]
    base = _in_process(nuclei)
    levels = (1, 4) if quick else (1, 4, 16, 64)
    modes = {"batching on": ("--max-batch", "16", "--max-delay-ms", str(MAX_DELAY_MS)),
             "batching off": ("--max-batch", "1", "--max-delay-ms", "0")}  # fmt: skip
    results = {}
    for mode, args in modes.items():
        proc, url = _start(*args, "--queue-size", "64")
        try:
            try:
                import psutil

                server = psutil.Process(proc.pid)
            except ImportError:  # the cores are then not reported
                server = None
            results[mode] = {c: _level(url, bodies, c, server) for c in levels}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    figures = []
    for mode, per in results.items():
        for c, r in per.items():
            figures.append({
                "name": f"{mode}, {c} client{'s' if c > 1 else ''}: nuclei/s",
                "project": r["nuclei_per_s"], "baseline": base["batch_nuclei_per_s"],
                "baseline_name": "in-process Classifier.classify_batch",
                "ratio": round(base["batch_nuclei_per_s"] / r["nuclei_per_s"], 2)
                if r["nuclei_per_s"] else None,
                "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "p99_ms": r["p99_ms"],
                "errors": r["errors"], "requests": r["requests"],
            })  # fmt: skip
    on = results["batching on"]
    top = 16 if 16 in on else max(on)
    goals = [
        {"goal": f"at {top} clients >= 0.8x the in-process batch throughput",
         "measured": f"{on[top]['nuclei_per_s'] / base['batch_nuclei_per_s']:.2f}x",
         "met": bool(on[top]["nuclei_per_s"] >= 0.8 * base["batch_nuclei_per_s"])},
        {"goal": f"at {top} clients >= 1.0x the in-process batch throughput (issue 38)",
         "measured": f"{on[top]['nuclei_per_s'] / base['batch_nuclei_per_s']:.2f}x",
         "met": bool(on[top]["nuclei_per_s"] >= base["batch_nuclei_per_s"])},
        {"goal": "p99 at 1 client <= in-process p99 + max delay + 10 ms",
         "measured": f"{on[1]['p99_ms']} ms vs {base['single_p99_ms'] + MAX_DELAY_MS + 10:.1f} ms",
         "met": bool(on[1]["p99_ms"] <= base["single_p99_ms"] + MAX_DELAY_MS + 10)},
        {"goal": "no request dropped (every one answered 200, 503 retried)",
         "measured": f"{sum(r['errors'] for per in results.values() for r in per.values())} errors",
         "met": all(r["errors"] == 0 for per in results.values() for r in per.values())},
    ]  # fmt: skip
    return {
        "inputs": {
            "nuclei": len(nuclei),
            "localizations_per_nucleus": 12000,
            "body": "Arrow IPC",
            "window_s": WINDOW_S,
            "levels": list(levels),
        },  # fmt: skip
        "baseline": "the in-process Classifier on the same nuclei (classify_batch of 16)",
        "in_process": base,
        "figures": figures,
        "goals": goals,
        "gpu_goal": "batching >= 2x throughput on a GPU: unverified (no GPU in this run)",
        "results": {m: {str(c): r for c, r in per.items()} for m, per in results.items()},
    }
