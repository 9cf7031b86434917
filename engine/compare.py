"""Parity as data: how far one output is from a reference (export checks, backend parity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "compare_outputs"]


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_outputs`; true when every element is within tolerance.

    Attributes
    ----------
    passed : bool
        Every element within tolerance (and all finite).
    max_abs, mean_abs, p99_abs : float
        Absolute differences: largest, mean, 99th percentile.
    max_rel : float
        The largest relative difference.
    atol, rtol : float
        The tolerances.
    same_argmax : bool
        The top-1 along the last axis is the same everywhere.
    n : int
        Elements compared.
    """

    passed: bool
    max_abs: float
    mean_abs: float
    p99_abs: float
    max_rel: float
    atol: float
    rtol: float
    same_argmax: bool
    n: int

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"{verdict}: max |diff| {self.max_abs:.3g} (mean {self.mean_abs:.3g}, p99 "
            f"{self.p99_abs:.3g}), "
            f"max rel {self.max_rel:.3g}; tolerance atol {self.atol:g} + rtol {self.rtol:g}·|ref|; "
            f"top-1 {'identical' if self.same_argmax else 'differs'} over {self.n} values"
        )


def compare_outputs(ref, test, *, rtol: float = 0.0, atol: float = 1e-4) -> Comparison:
    """Compare ``test`` with ``ref`` element-wise: pass when ``|test − ref| ≤ atol + rtol·|ref|``.

    ``same_argmax`` compares the top-1 along the last axis (class calls from logits).

    Parameters
    ----------
    ref, test : array_like
        Outputs of one shape.
    rtol, atol : float
        Relative and absolute tolerance.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        The shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from ainu_engine.compare import compare_outputs
    >>> r = compare_outputs(np.array([[1.0, 2.0]]), np.array([[1.0, 2.00005]]), atol=1e-4)
    >>> bool(r), r.same_argmax
    (True, True)
    """
    a = np.asarray(ref, np.float64)
    b = np.asarray(test, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: reference {a.shape}, test {b.shape}")
    d = np.abs(a - b)
    finite = bool(np.isfinite(b).all() and np.isfinite(a).all())
    if d.size == 0:
        return Comparison(True, 0.0, 0.0, 0.0, 0.0, atol, rtol, True, 0)
    rel = d / np.maximum(np.abs(a), np.finfo(np.float32).tiny)
    same = bool((a.argmax(-1) == b.argmax(-1)).all()) if a.ndim else True
    passed = finite and bool((d <= atol + rtol * np.abs(a)).all())
    return Comparison(
        passed,
        float(d.max()),
        float(d.mean()),
        float(np.percentile(d, 99)),
        float(rel.max()),
        atol,
        rtol,
        same,
        int(d.size),
    )
