"""Repository-level pytest setup, loaded before anything imports numba.

CUDA kernels run in Numba's CUDA simulator in the normal test run (no GPU needed); on a GPU
machine set AINU_REAL_GPU=1 to run them on the device instead.
"""

import os

if os.environ.get("AINU_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

# The tests' own cache (renders, kept bench measurements, TensorRT engines): a user's cache must
# not change what `--backend auto` picks in a test, and the tests must not fill the user's
# (AINU_TEST_KEEP_CACHE_DIR=1 keeps AINU_CACHE_DIR as it is set).
if os.environ.get("AINU_TEST_KEEP_CACHE_DIR") != "1":
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="ainu-test-cache-")
    os.environ["AINU_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
