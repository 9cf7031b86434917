"""``ainu-engine doctor``: this machine and installation, for a bug report."""

from __future__ import annotations

from rich.markup import escape

from ._options import JsonOpt
from ._output import Output


def doctor(json: JsonOpt = False) -> None:
    """Print what a bug report needs: the versions of ainu-engine, Python and the libraries it
    uses, the OS, the CPU and its SIMD flags, GPUs and CUDA, which backends can run here and
    why the others cannot, thread counts, and the cache folders with their sizes. With --json,
    one object. Paste it into the issue.

    Example: ainu-engine doctor --json > doctor.json"""
    from ..doctor import doctor_report

    r = doctor_report()
    cpu, gpu, th, ca = r["cpu"], r["gpu"], r["threads"], r["caches"]
    lines = [
        f"version   ainu-engine {r['ainu_engine']}, Python {r['python']['version']} "
        f"({r['python']['executable']})",
        f"os        {r['os']['platform']}",
        f"cpu       {cpu['model']}, {cpu['usable_cores']} of {cpu['logical_cores']} cores usable, "
        f"SIMD: {', '.join(cpu['simd']) or 'none found'}",
        "gpu       " + ("; ".join(gpu["gpus"]) if gpu["gpus"] else "none (no nvidia-smi GPU)"),
    ]
    if isinstance(gpu["torch_cuda"], dict):
        t = gpu["torch_cuda"]
        lines.append(f"          torch CUDA {t['built_with'] or '(CPU build)'}, available: "
                     f"{t['available']}, devices: {t['devices']}")  # fmt: skip
    lines.append("backends")
    for b in r["backends"]:
        mark = "yes" if b["available"] else "no "
        lines.append(f"  {mark} {b['backend']:<22} {b['why']}")
    lines.append(f"threads   Numba {th['numba_threads']} ({th['numba_threading_layer']}), "
                 f"ONNX Runtime intra-op {th['onnxruntime_intra_op_threads']}")  # fmt: skip
    size = ca.get("bytes")
    lines.append(f"cache     {ca['root']}" + (f" ({size / 2**20:.1f} MiB: " + ", ".join(
        f"{k} {v / 2**20:.1f}" for k, v in ca["folders"].items()) + ")" if size else
        " (empty)"))  # fmt: skip
    lines.append("libraries")
    for name, v in r["libraries"].items():
        if v is not None:
            lines.append(f"  {name:<16} {v}")
    missing = [n for n, v in r["libraries"].items() if v is None]
    if missing:
        lines.append(f"  not installed: {', '.join(missing)}")
    if r["environment"]:
        lines.append("environment " + ", ".join(f"{k}={v}" for k, v in r["environment"].items()))
    Output(json_lines=json).record(r, escape("\n".join(lines)))
