"""The ainu-engine command line: output streams, JSON Lines, exit codes, batches past bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ainu_engine.cli import main
from tests.engine.io import samples as S
from tests.engine.io.test_shared_formats import CASES


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    from ainu_engine import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"ainu-engine {__version__}"


def test_info_json_reports_every_shared_file_in_one_call(capsys, shared_formats):
    files = sorted(
        p for p in shared_formats.rglob("*") if p.is_file() and p.suffix not in (".yaml", ".md")
    )
    code, out, err = run(capsys, "info", "--json", "--camera-pixel-nm", "160", *files)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == len(files) == 11
    by_path = {Path(r["path"]).relative_to(shared_formats).as_posix(): r for r in records}
    for name, (rel, _, exp) in CASES.items():
        r = by_path[rel]
        assert r["format"] == name
        assert r["n_localizations"] == exp["n"]
        assert r["x_range_nm"] == pytest.approx(exp["x"], rel=1e-4, abs=0.05)
        assert r["y_range_nm"] == pytest.approx(exp["y"], rel=1e-4, abs=0.05)
        assert r["frame_range_in_file"] == exp["frames_in_file"]
        if "channels" in exp:
            assert r["channels"] == {str(k): v for k, v in exp["channels"].items()}
    assert (
        by_path["insight3_bin/storm-analysis_test_300x200_dh_olist.bin"]["camera_pixel_nm"] == 160
    )
    assert by_path["picasso_hdf5/testdata_locs.hdf5"]["camera_pixel_nm"] == 130
    assert by_path["decode_h5/locan_decode_dstorm_data.h5"]["camera_pixel_nm"] == [127, 117]
    assert by_path["decode_h5/locan_decode_dstorm_data_empty.h5"]["n_localizations"] == 0
    assert (
        by_path["rapidstorm_txt/locan_rapidSTORM_dstorm_track_data.txt"]["details"]["n_tracks"]
        == 14
    )


def test_info_goes_on_past_bad_files_and_exits_1(capsys, tmp_path):
    good = S.thunderstorm(tmp_path / "good.csv")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, out, err = run(capsys, "info", "--json", empty, tmp_path, good)
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["empty.csv", tmp_path.name, "good.csv"]
    assert "is empty" in records[0]["error"] and "is a directory" in records[1]["error"]
    assert records[2]["n_localizations"] == 5
    err_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 2 and all("Traceback" not in line for line in err.splitlines())
    assert "2 of 3 files failed" in err


def test_info_text_output(capsys, tmp_path):
    path = S.thunderstorm(tmp_path / "a.csv")
    code, out, err = run(capsys, "info", path)
    assert code == 0 and err == ""
    assert "thunderstorm" in out and "1,000 .. 1,040" not in out and "1000 .. 1040 nm" in out
    assert "frames (0-based)  0 .. 4 (in the file: 1 .. 5)" in out


def test_usage_errors_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "info", "--no-such-flag", tmp_path)
    assert code == 2 and "No such option" in err
    code, _, err = run(capsys, "info", "--camera-pixel-nm", "abc", tmp_path)
    assert code == 2 and "--camera-pixel-nm" in err
    code, _, _ = run(capsys, "convert", tmp_path, "--out", tmp_path / "o", "--to", "xls")
    assert code == 2


def test_missing_pixel_size_one_line_and_debug_traceback(capsys, tmp_path, monkeypatch):
    path = S.insight3(tmp_path / "a.bin", pixel=None)
    code, out, err = run(capsys, "info", path)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "--camera-pixel-nm" in err and "a.bin" in err
    monkeypatch.delenv("AINU_DEBUG", raising=False)
    code, _, err = run(capsys, "--debug", "info", path)
    assert code == 1 and "Traceback" in err and "PixelSizeError" in err


def test_convert_single_file_and_folder(capsys, tmp_path):
    src = S.thunderstorm(tmp_path / "a.csv")
    code, out, err = run(
        capsys, "convert", src, "--out", tmp_path / "a.bin", "--camera-pixel-nm", "100"
    )
    assert code == 0, err
    assert (tmp_path / "a.bin").is_file() and (tmp_path / "a.bin.json").is_file()
    assert "photons, precision_nm" in err  # Insight3 cannot hold them: said on stderr
    b = tmp_path / "b.bin"
    (tmp_path / "a.bin").rename(b)
    (tmp_path / "a.bin.json").rename(tmp_path / "b.bin.json")
    code, out, err = run(capsys, "convert", "--json", src, b, "--out", tmp_path / "pq")
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["output"]).name for r in recs] == ["a.parquet", "b.parquet"]
    assert [r["n_localizations"] for r in recs] == [5, 5]
    assert recs[1]["format"] == "insight3"


def test_convert_batch_isolates_failures(capsys, tmp_path):
    a = S.thunderstorm(tmp_path / "a.csv")
    bad = tmp_path / "b.csv"
    bad.write_text("nothing useful\n")
    c = S.nanoimager(tmp_path / "c.csv")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "convert", "--json", a, bad, c, "--out", out_dir, "--to", "arrow")
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.arrow", "c.arrow"]
    recs = [json.loads(line) for line in out.splitlines()]
    assert "error" in recs[1] and "b.csv" in recs[1]["error"]
    # rerun without --force: outputs exist, so those fail; nothing is overwritten
    before = (out_dir / "a.arrow").read_bytes()
    code, _, err = run(capsys, "convert", a, "--out", out_dir, "--to", "arrow")
    assert code == 1 and "exists already" in err
    assert (out_dir / "a.arrow").read_bytes() == before
    code, _, _ = run(capsys, "convert", a, "--out", out_dir, "--to", "arrow", "--force")
    assert code == 0


def test_convert_same_stem_collision(capsys, tmp_path):
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    a = S.thunderstorm(tmp_path / "d1" / "x.csv")
    b = S.thunderstorm(tmp_path / "d2" / "x.csv")
    code, _, err = run(capsys, "convert", a, b, "--out", tmp_path / "o")
    assert code == 1 and "would overwrite the output of" in err


def test_formats_lists_every_format(capsys):
    from ainu_engine.io import FORMATS

    code, out, _ = run(capsys, "formats", "--json")
    assert code == 0
    names = [json.loads(line)["name"] for line in out.splitlines()]
    assert names == list(FORMATS)


def test_console_script_runs(tmp_path):
    """The installed entry point, as a user runs it (separate process, real streams)."""
    exe = Path(sys.executable).with_name("ainu-engine")
    if not exe.exists():
        pytest.skip("ainu-engine console script not installed in this environment")
    path = S.thunderstorm(tmp_path / "a.csv")
    res = subprocess.run(
        [str(exe), "info", "--json", str(path), str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert json.loads(lines[0])["n_localizations"] == 5
    assert "no such file" in json.loads(lines[1])["error"]
    assert res.stderr.strip().startswith("error:") and "Traceback" not in res.stderr


def test_help_texts_read_as_paragraphs():
    """No hard line breaks from docstrings inside a paragraph of any command's --help."""
    import typer.main

    from ainu_engine.cli._app import COMMANDS, GROUPS, app

    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS) | set(GROUPS)
    cmds = [(n, c) for n, c in group.commands.items() if n not in GROUPS]
    for g, sub in GROUPS.items():
        assert set(group.commands[g].commands) == set(sub)
        cmds += [(f"{g} {n}", c) for n, c in group.commands[g].commands.items()]
    for name, cmd in cmds:
        paras = cmd.help.split("\n\n")
        assert paras and all(p and "\n" not in p for p in paras), name
