"""``python -m benchmarks list | run NAME [--device cpu|cuda] [--quick] | report``."""

from __future__ import annotations

import argparse
import sys

from . import (  # noqa: F401  (registers)
    distributed,
    explain,
    explain_plan,
    infer,
    io_load,
    live,
    nucleus,
    pipeline,
    preprocess,
    quantize,
    render,
    report_size,
    serve,
    shift,
    simulate,
    train_augment,
)
from ._harness import REGISTRY, report, write_result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the benchmarks")
    run = sub.add_parser("run", help="run one benchmark and write its JSON result")
    run.add_argument("name", choices=sorted(REGISTRY))
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    run.add_argument(
        "--quick", action="store_true", help="small inputs (a smoke run, not a result)"
    )
    sub.add_parser("report", help="regenerate benchmarks/RESULTS.md from results/*.json")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for b in REGISTRY.values():
            print(f"{b.name:<12} {','.join(b.devices):<10} {b.description}")
        return 0
    if args.cmd == "report":
        print(report())
        return 0
    bench = REGISTRY[args.name]
    if args.device not in bench.devices:
        print(
            f"{bench.name} has no {args.device} variant (devices: {', '.join(bench.devices)})",
            file=sys.stderr,
        )
        return 2
    payload = bench.run(device=args.device, quick=args.quick)
    path = write_result(bench.name, args.device, payload, argv, quick=args.quick)
    print(path)
    for row in payload.get("figures", []):
        print(
            f"  {row['name']}: {row['project']}  (baseline {row.get('baseline', '-')}, "
            f"ratio {row.get('ratio', '-')})"
        )
    for goal in payload.get("goals", []):
        print(f"  goal {goal['goal']}: {goal['measured']} -> {'met' if goal['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
