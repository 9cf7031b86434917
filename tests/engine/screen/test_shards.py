"""Shards and merge (issue 21): a screen split into N shards and merged is the single-machine
screen (same rows, probabilities to 1e-6); merge finds every nucleus exactly once or names what
is missing, doubled or mismatched; a requeued shard (run twice) changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ainu_engine.cli import main
from ainu_engine.errors import InputError
from ainu_engine.screen import MergeError, merge, parse_shard, screen, shard_of

pytest.importorskip("onnxruntime", reason="screening needs the cpu extra")
N = 3


@pytest.fixture(scope="module")
def data(screen_batch):
    return screen_batch


def _rows(path: Path) -> dict:
    t = pq.read_table(path).to_pylist()
    return {(r["source"], r["nucleus_id"]): r for r in t}


def _shard_all(model, data, out, n=N, **kw):
    return [screen([data], model, out, shard=(k, n), **kw) for k in range(n)]


def test_sharded_and_merged_is_the_single_machine_screen(data, tmp_path):
    model, folder, single = data
    out = tmp_path / "sharded"
    parts = _shard_all(model, folder, out)
    assert sum(p.n_files for p in parts) == single.n_files  # each file in exactly one shard
    assert all(p.out == out / "shards" / f"{k:04d}-of-{N:04d}" for k, p in enumerate(parts))
    assert not (out / "results.parquet").exists()  # nothing at the top before the merge
    doc = merge(out)
    ref, got = _rows(single.results), _rows(out / "results.parquet")
    assert set(got) == set(ref) and len(got) == single.n_nuclei
    for key, r in ref.items():
        assert got[key]["predicted"] == r["predicted"]
        for c in ("p_hiPSC", "p_somatic"):
            assert abs(got[key][c] - r[c]) <= 1e-6
    assert doc["nuclei"] == single.n_nuclei and doc["calls"] == single.calls
    assert doc["shards"]["n"] == N and sum(doc["shards"]["nuclei_per_shard"]) == single.n_nuclei
    errors = (out / "errors.csv").read_text()
    assert "broken.csv" in errors and doc["failed"] == single.n_failed == 1
    assert (out / "report.html").is_file()
    assert json.loads((out / "summary.json").read_text())["nuclei"] == single.n_nuclei


def test_a_requeued_shard_and_a_batch_written_twice_change_nothing(data, tmp_path):
    model, folder, single = data
    out = tmp_path / "requeue"
    _shard_all(model, folder, out)
    for k in (0, 1):  # two shards requeued (SLURM): each resumes from its parts, redoes nothing
        again = screen([folder], model, out, shard=(k, N))
        assert again.n_files_skipped == again.n_files - again.n_failed and again.n_nuclei == 0
    # a crash between writing a part and journaling it redoes that batch: the same rows twice
    parts = sorted((out / "shards").glob("*/parts/part-*.parquet"))
    shutil.copy(parts[0], parts[0].with_name(parts[0].name.replace(".parquet", "9.parquet")))
    merge(out)
    assert len(_rows(out / "results.parquet")) == single.n_nuclei


def test_merge_names_what_is_missing_doubled_or_mismatched(data, tmp_path):
    model, folder, _ = data
    out = tmp_path / "bad"
    with pytest.raises(InputError, match="no shards to merge"):
        merge(out)
    screen([folder], model, out, shard=(0, N))
    screen([folder], model, out, shard=(2, N))
    with pytest.raises(MergeError, match=f"1 of {N} shards have not finished: 1/{N}"):
        merge(out)
    screen([folder], model, out, shard=(1, N))
    shards = out / "shards"
    # which shards hold parts depends on the paths' hashes (tmp folders differ between runs)
    with_parts = [
        k
        for k in range(N)
        if list((shards / f"{k:04d}-of-{N:04d}" / "parts").glob("part-*.parquet"))
    ]
    a = with_parts[0]
    b = next(k for k in range(N) if k != a)
    # a nucleus in two shards: a part of shard a appears in shard b too
    p0 = sorted((shards / f"{a:04d}-of-{N:04d}" / "parts").glob("part-*.parquet"))[0]
    dup = shards / f"{b:04d}-of-{N:04d}" / "parts" / p0.name.replace("-0000", "-9999")
    shutil.copy(p0, dup)
    lo, hi = sorted((a, b))
    with pytest.raises(
        MergeError, match=rf"appear in more than one shard: .*\(shards {lo} and {hi}\)"
    ):
        merge(out)
    dup.unlink()
    # a part lost (disk, hand): the journal says the file is done, its rows are not there
    lost = sorted((shards / f"{a:04d}-of-{N:04d}" / "parts").glob("part-*.parquet"))[0]
    gone = pq.read_table(lost, columns=["source"]).column("source")[0].as_py()
    lost.unlink()
    with pytest.raises(MergeError, match="files are incomplete") as err:
        merge(out)
    assert Path(gone).name in str(err.value) and f"in shard {a}" in str(err.value)
    # another split in the same folder
    screen([folder], model, out, shard=(0, 2))
    with pytest.raises(MergeError, match=r"different counts N \(2, 3\)"):
        merge(out)


def test_shard_assignment_is_stable_and_spread():
    paths = [f"/data/slide{i // 50}/nucleus{i:04d}.bin" for i in range(2000)]
    a = [shard_of(p, 8) for p in paths]
    assert a == [shard_of(p, 8) for p in paths]
    counts = np.bincount(a, minlength=8)
    assert counts.min() > 2000 / 8 * 0.8, counts  # within 20 % of even
    assert parse_shard("3/16") == (3, 16) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("16/16", "1/0", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_cli_shard_and_merge(data, tmp_path, capsys):
    model, folder, single = data
    out = tmp_path / "cli"
    for k in range(2):
        code = main(["screen", str(folder), "--model", str(model), "--out", str(out),
                     "--shard", f"{k}/2", "--json"])  # fmt: skip
        assert code in (0, 1)  # 1: the broken file's shard
    capsys.readouterr()
    assert main(["merge", str(out), "--json"]) == 1  # the broken file is an error row
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["nuclei"] == single.n_nuclei and doc["shards"]["n"] == 2
    assert main(["screen", str(folder), "--model", str(model), "--out", str(out),
                 "--shard", "2/2"]) == 2  # fmt: skip
    assert "K must be 0 to N-1" in capsys.readouterr().err
