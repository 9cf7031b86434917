"""Hostile localization files: every foreseeable defect is one AinuError naming the file,
out-of-range values are errors (never wrapped or saturated), and what a file declares never
makes the reader allocate more than the file can hold."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ainu_engine.errors import AinuError, FormatError
from ainu_engine.io import Localizations, read, write

from .samples import smlm


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("channel", np.array([3_000_000_000, 1], np.int64), "'channel' holds a value out of range"),
        ("channel", np.array([-1, 1], np.int64), "'channel' holds a value out of range"),
        ("frame", np.array([1e19, 2.0]), "'frame' holds a value out of range"),
    ],
)
def test_out_of_range_whole_numbers_are_errors(tmp_path, column, values, message):
    # a foreign Parquet table and one ainu-engine wrote and someone edited: both readers check
    pq.write_table(
        pa.table({"x_nm": [1.0, 2.0], "y_nm": [1.0, 2.0], column: values}), tmp_path / "a.parquet"
    )
    write(Localizations(np.array([1.0, 2.0]), np.array([1.0, 2.0]), channel=[0, 1], frame=[0, 1]),
          tmp_path / "b.parquet")  # fmt: skip
    t = pq.read_table(tmp_path / "b.parquet")
    t = t.set_column(t.column_names.index(column), column, pa.array(values))
    pq.write_table(t.replace_schema_metadata(pq.read_table(tmp_path / "b.parquet").schema.metadata),
                   tmp_path / "c.parquet")  # fmt: skip
    for name in ("a.parquet", "c.parquet"):
        with pytest.raises(FormatError, match=message) as exc:
            read(tmp_path / name)
        assert name in str(exc.value)


def _smlm_with(path, *, manifest=None, member=None, rows=5, mutate=None):
    smlm(path, 5)
    with zipfile.ZipFile(path) as zf:
        m = json.loads(zf.read("manifest.json"))
        data = zf.read("table-0.bin")
    m["files"][0]["rows"] = rows
    if mutate is not None:
        mutate(m)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", manifest if manifest is not None else json.dumps(m))
        zf.writestr("table-0.bin", member if member is not None else data)
    return path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": -1}, "row count is not a whole number"),
        ({"rows": "many"}, "row count is not a whole number"),
        ({"rows": 10**12}, "truncated table"),
        ({"manifest": "[1, 2]"}, "not an object of files and formats"),
        ({"manifest": json.dumps({"files": [1, 2], "formats": {}})}, "not an object of files"),
        ({"manifest": "[" * 100_000 + "]" * 100_000}, "not valid JSON"),
        ({"mutate": lambda m: m["formats"]["smlm-table(binary)-0"].update(dtype=["V0"] * 3)},
         "numbers that take bytes"),
        ({"mutate": lambda m: m["files"][0].update(name=["x"])}, "missing from the archive"),
    ],
)  # fmt: skip
def test_bad_smlm_manifests_are_format_errors(tmp_path, kwargs, message):
    with pytest.raises(FormatError, match=message):
        read(_smlm_with(tmp_path / "bad.smlm", **kwargs), format="smlm")


def _flip_member_byte(path, member: str, at: int) -> None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupt_and_encrypted_smlm_archives_are_format_errors(tmp_path):
    p = _smlm_with(tmp_path / "crc.smlm", member=np.arange(15, dtype="<f4").tobytes() * 40, rows=5)
    _flip_member_byte(p, "table-0.bin", 3)
    with pytest.raises(AinuError):
        read(p, format="smlm")
    p = _smlm_with(tmp_path / "enc.smlm")
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("table-0.bin")
    raw[info.header_offset + 6] |= 0x1  # the local header's "encrypted" flag ...
    cd = raw.rfind(
        b"PK\x01\x02" + raw[raw.find(b"PK\x01\x02") + 4 :][:0]
    )  # ... and the central one
    for k in range(len(raw) - 4):
        if raw[k : k + 4] == b"PK\x01\x02" and raw[k + 46 : k + 46 + 11] == b"table-0.bin":
            raw[k + 8] |= 0x1
    del cd
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="encrypted"):
        read(p, format="smlm")


def test_a_zip_bomb_is_not_inflated_past_what_the_manifest_declares(tmp_path):
    """A 300 MB member of zeros (a few hundred kB deflated) behind a manifest of 5 rows: the
    reader inflates the 60 bytes the manifest declares, not the member."""
    import tracemalloc

    p = tmp_path / "bomb.smlm"
    smlm(p, 5)
    with zipfile.ZipFile(p) as zf:
        manifest = zf.read("manifest.json")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", manifest)
        with zf.open("table-0.bin", "w", force_zip64=True) as fh:
            chunk = np.zeros(2**20, np.uint8).tobytes()
            for _ in range(300):
                fh.write(chunk)
    assert p.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        locs = read(p, format="smlm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert locs.n == 5
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("layout", ["picasso", "decode"])
def test_an_hdf5_declaring_more_rows_than_it_stores_is_refused(tmp_path, layout):
    """20 kB on disk, 3e8 declared rows (chunked, no chunk written): an error, not gigabytes."""
    import resource

    import h5py

    p = tmp_path / f"{layout}.hdf5"
    n = 300_000_000 if layout == "picasso" else 100_000_000
    with h5py.File(p, "w") as f:
        if layout == "picasso":
            dt = np.dtype([("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("photons", "<f4")])
            f.create_dataset("locs", shape=(n,), dtype=dt, chunks=(4096,))
        else:
            g = f.create_group("data")
            g.create_dataset("xyz", shape=(n, 3), dtype="<f4", chunks=(4096, 3))
            f.create_group("decode").attrs["version"] = "0.10"
    assert p.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FormatError, match="declares .* rows .* but the file stores") as exc:
        read(p, camera_pixel_nm=100.0)
    assert p.name in str(exc.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


def _cases(tmp_path):
    """(name, path, read options) of the reader escapes found by probing, one of each kind."""
    import h5py
    import pyarrow.ipc as ipc

    from .samples import picasso, rapidstorm_tracks, thunderstorm

    out = []
    p = thunderstorm(tmp_path / "cr.csv", 20)
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r"))  # classic Mac line endings
    out.append(("CR-only CSV", p, {}))
    for name, meta in (
        ("empty-list", b"[]"),
        ("null", b"null"),
        ("names-list", b'{"channel_names": [1]}'),
    ):
        t = pa.table({"x_nm": [1.0, 2.0], "y_nm": [1.0, 2.0]}).replace_schema_metadata(
            {b"ainu.localizations": meta}
        )
        pq.write_table(t, tmp_path / f"{name}.parquet")
        out.append((f"Parquet metadata {name}", tmp_path / f"{name}.parquet", {}))
    p = rapidstorm_tracks(tmp_path / "tracks.txt", rows=["100 200 1 inf 99 5 199 5 0"])
    out.append(("rapidSTORM track count inf", p, {}))
    p = picasso(tmp_path / "deep.hdf5")
    p.with_suffix(".yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    out.append(("nested YAML sidecar", p, {}))
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1], pa.int8()), [pa.array([1.0, 2.0]), pa.array([3.0, 4.0])]
    )
    t = pa.table({"x_nm": union, "y_nm": [1.0, 2.0]})
    with ipc.new_file(tmp_path / "union.arrow", t.schema) as w:
        w.write_table(t)
    out.append(("Arrow union column", tmp_path / "union.arrow", {}))
    p = picasso(tmp_path / "corrupt.hdf5")
    raw = bytearray(p.read_bytes())
    raw[600:1400] = bytes(800)
    p.write_bytes(bytes(raw))
    out.append(("corrupt HDF5", p, {"camera_pixel_nm": 100.0}))
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    out.append(("HDF5 of no known layout", tmp_path / "empty.h5", {}))
    return out


def test_each_kind_of_reader_escape_is_an_ainu_error(tmp_path):
    for what, path, kw in _cases(tmp_path):
        try:
            locs = read(path, **kw)
        except AinuError as err:
            assert path.name in str(err), what
            assert "\n" not in str(err), what
        else:  # read correctly is fine too, as long as nothing invalid came through
            assert np.isfinite(locs.x_nm).all(), what
