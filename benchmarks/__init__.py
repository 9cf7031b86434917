"""Reproducible benchmarks of ainu-engine against named baselines.

``python -m benchmarks list | run NAME [--device cpu|cuda] [--quick] | report``. Each run
writes ``benchmarks/results/<name>-<device>.json``; ``report`` regenerates RESULTS.md.
"""
