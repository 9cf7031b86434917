"""Performance-critical numeric kernels of ainu-engine (pure functions on arrays, no I/O).

Each kernel has a NumPy reference it is tested against. Nothing here imports ``engine``.
"""

__all__: list[str] = []
