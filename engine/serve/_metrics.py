"""The server's metrics in the Prometheus text exposition format (no client library needed):
requests by route and status, latency histograms, batch sizes, queue depth, live sessions."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, v: float) -> None:
        k = next((i for i, b in enumerate(self.buckets) if v <= b), len(self.buckets))
        self.counts[k] += 1
        self.sum += v
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, cum = [], 0
        sep = "," if labels else ""
        for b, c in zip((*self.buckets, "+Inf"), self.counts, strict=True):
            cum += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{b}"}} {cum}')
        lab = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{lab} {self.sum:.6f}", f"{name}_count{lab} {self.n}"]
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.batch_items = _Histogram(BATCH_BUCKETS)
        self.batch_requests = _Histogram(BATCH_BUCKETS)
        self.rejected_full = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, n_requests: int, n_items: int) -> None:
        with self._lock:
            self.batch_requests.observe(n_requests)
            self.batch_items.observe(n_items)

    def render(self, *, queue_depth: int, live_sessions: int) -> str:
        with self._lock:
            lines = ["# HELP ainu_requests_total HTTP requests by route and status.",
                     "# TYPE ainu_requests_total counter"]  # fmt: skip
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'ainu_requests_total{{route="{route}",status="{status}"}} {n}')
            lines += ["# HELP ainu_request_seconds Request latency.",
                      "# TYPE ainu_request_seconds histogram"]  # fmt: skip
            for route, h in sorted(self.latency.items()):
                lines += h.lines("ainu_request_seconds", f'route="{route}"')
            lines += ["# HELP ainu_batch_requests Requests inferred together.",
                      "# TYPE ainu_batch_requests histogram",
                      *self.batch_requests.lines("ainu_batch_requests"),
                      "# HELP ainu_batch_items Model items (images, patches) per inference batch.",
                      "# TYPE ainu_batch_items histogram",
                      *self.batch_items.lines("ainu_batch_items"),
                      "# HELP ainu_queue_depth Prepared nuclei waiting for inference.",
                      "# TYPE ainu_queue_depth gauge", f"ainu_queue_depth {queue_depth}",
                      "# HELP ainu_queue_full_total Requests answered 503 (queue full).",
                      "# TYPE ainu_queue_full_total counter",
                      f"ainu_queue_full_total {self.rejected_full}",
                      "# HELP ainu_live_sessions Open live sessions.",
                      "# TYPE ainu_live_sessions gauge",
                      f"ainu_live_sessions {live_sessions}"]  # fmt: skip
            return "\n".join(lines) + "\n"
