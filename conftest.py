"""Repository-level pytest setup, loaded before anything imports numba.

CUDA kernels run in Numba's CUDA simulator in the normal test run (no GPU needed); on a GPU
machine set AINU_REAL_GPU=1 to run them on the device instead.
"""

import os

if os.environ.get("AINU_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
