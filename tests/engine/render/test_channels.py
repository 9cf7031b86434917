"""Model channels matched to file channels by name or id, never merged silently (issue 16,
defect 1): synthetic files for every rule, and the real N-STORM fields (channels 561/647 and
405/488, 561, 647) read in place from ../shared/data/real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ainu_engine.errors import ChannelError
from ainu_engine.io import Localizations, Metadata, read
from ainu_engine.render import RenderSpec, match_channels, parse_channel_map, select_channels

REPO = Path(__file__).resolve().parents[3]
REAL = REPO.parent / "shared" / "data" / "real"
TWO_COLOUR = REAL / "JBC-STORM-2020_m2_unstim_5lo561_flap647.txt"
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"


def locs(channels, names=None):
    n = len(channels)
    rng = np.random.default_rng(0)
    return Localizations(
        rng.uniform(0, 5000, n),
        rng.uniform(0, 5000, n),
        channel=channels,
        meta=Metadata(channel_names=names or {}, source_path="field.txt"),
    )


TWO_NAMED = locs([1, 2, 2, 1], {1: "561", 2: "647"})


def test_a_one_channel_model_refuses_a_two_channel_file_naming_both_lists_and_the_option():
    with pytest.raises(ChannelError) as exc:
        match_channels(TWO_NAMED, RenderSpec(), ["polII"])
    msg = str(exc.value)
    assert "field.txt" in msg and "polII" in msg and "1 (561), 2 (647)" in msg
    assert "--channel-map polII=561" in msg


def test_unnamed_channels_are_not_merged_either():
    with pytest.raises(ChannelError, match="takes 1 channel, the file has 2"):
        match_channels(locs([0, 1, 1]), RenderSpec(), ["ch0"])


def test_a_map_says_which_file_channel_feeds_the_model():
    spec = match_channels(TWO_NAMED, RenderSpec(), ["polII"], parse_channel_map("polII=647"))
    assert spec.channels == (2,)
    # by id, and by the model channel's position
    assert match_channels(TWO_NAMED, RenderSpec(), ["polII"], {"0": "1"}).channels == (1,)


@pytest.mark.parametrize(
    ("cmap", "problem"),
    [
        ({"h3": "647"}, "does not map model channel 'polII'"),
        ({"polII": "488"}, "maps 'polII' to '488', which the file does not have"),
        ({"polII": "647", "dna": "561"}, "names model channels the model does not have (dna)"),
    ],
)
def test_a_wrong_map_is_an_error(cmap, problem):
    with pytest.raises(ChannelError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        match_channels(TWO_NAMED, RenderSpec(), ["polII"], cmap)


def test_names_match_whatever_their_case_and_order():
    f = locs([1, 2, 3], {1: "H3", 2: "dna", 3: "PolII"})
    spec = RenderSpec(channels=(1, 2))  # trained on files where polII was 1 and h3 was 2
    assert match_channels(f, spec, ["polII", "h3"]).channels == (3, 1)


def test_names_that_disagree_are_refused_even_when_the_ids_exist():
    f = locs([1, 2], {1: "561", 2: "647"})
    with pytest.raises(ChannelError, match="channel names do not match"):
        match_channels(f, RenderSpec(channels=(1, 2)), ["polII", "h3"])


def test_ids_are_used_where_the_file_names_nothing():
    spec = RenderSpec(channels=(1, 2))
    assert match_channels(locs([1, 2, 2]), spec, ["polII", "h3"]) is spec
    with pytest.raises(ChannelError, match=r"lacks channel id\(s\) \[2\]"):
        match_channels(locs([1, 1, 3]), spec, ["polII", "h3"])


def test_placeholder_names_from_training_count_as_no_name():
    f = locs([1, 2, 2], {1: "polII", 2: "h3"})
    assert match_channels(f, RenderSpec(channels=(2,)), ["ch2"]).channels == (2,)


def test_single_channel_files_fit_a_single_channel_model():
    spec = RenderSpec()
    assert match_channels(locs([0, 0, 0]), spec, ["polII"]) is spec
    no_column = Localizations(np.zeros(3), np.zeros(3))
    assert match_channels(no_column, spec, ["polII"]) is spec
    named = locs([1, 1], {1: "polII"})
    assert match_channels(named, RenderSpec(channels=(4,)), ["polII"]).channels is None


def test_render_channels_take_names_and_ids_and_the_error_lists_the_map():
    assert select_channels(TWO_NAMED, ["647", "561"]) == (2, 1)
    assert select_channels(TWO_NAMED, [2]) == (2,)
    with pytest.raises(ChannelError) as exc:
        select_channels(TWO_NAMED, ["488"])
    assert "1 (561), 2 (647)" in str(exc.value) and "--channels" in str(exc.value)


def test_parse_channel_map_rejects_what_is_not_pairs():
    assert parse_channel_map(None) is None
    with pytest.raises(ValueError, match="MODELCH=FILECH"):
        parse_channel_map("polII")
    with pytest.raises(ValueError, match="mapped twice"):
        parse_channel_map("polII=1,POLII=2")


# -- the real N-STORM field: two named channels ------------------------------------------------


def _real():
    if not TWO_COLOUR.is_file():
        pytest.skip(f"real data not found at {REAL} (it lives in ../shared/data/real)")
    return read(TWO_COLOUR)


def test_the_real_two_colour_field_is_refused_by_the_one_channel_model_and_mapped_on_request():
    from ainu_engine import Classifier

    f = _real()
    assert sorted(f.meta.channel_names.values()) == ["561", "647"]
    kw = {"backend": "onnxruntime", "device": "cpu", "render_device": "cpu"}
    with Classifier.load(MODEL, **kw) as clf, pytest.raises(ChannelError, match="--channel-map"):
        clf.prepare(f)
    with Classifier.load(MODEL, channel_map={"polII": "647"}, **kw) as clf:
        p = clf.prepare(f)
    far_red = [c for c, n in f.meta.channel_names.items() if n == "647"][0]
    assert p.n_localizations == [int(np.count_nonzero(f.channel == far_red))]


def test_screen_makes_one_error_row_per_mismatched_file_and_calls_with_the_map(tmp_path):
    from ainu_engine.cli import main

    _real()
    base = ["screen", str(TWO_COLOUR), "--model", str(MODEL), "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 1
    errors = (tmp_path / "a" / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and "--channel-map polII=561" in errors[1]
    assert main([*base, "--out", str(tmp_path / "b"), "--channel-map", "polII=647"]) == 0
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "b" / "results.parquet")
    assert t.num_rows == 1 and t.column("n_loc_polII")[0].as_py() > 0


def test_render_warns_when_it_merges_and_renders_one_channel_by_name(tmp_path, capsys):
    from ainu_engine.cli import main

    f = _real()
    common = ["render", str(TWO_COLOUR), "--size", "0", "--pixel-nm", "200", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    assert "rendered into one image" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "far-red"), "--channels", "647", "--json"]) == 0
    import json

    side = json.loads((tmp_path / "far-red" / (TWO_COLOUR.stem + ".tiff.json")).read_text())
    far_red = [c for c, n in f.meta.channel_names.items() if n == "647"][0]
    assert side["render_spec"]["channels"] == [far_red]


def test_a_manifest_rows_map_is_parsed_cut_to_the_model_and_refused_without_its_channel():
    from ainu_engine.render import parse_row_channels, row_channel_map

    assert parse_row_channels("cpla2=647;5lo=561") == {"cpla2": "647", "5lo": "561"}
    assert parse_row_channels("") is None
    with pytest.raises(ValueError, match="MODELCH=FILECH"):
        parse_row_channels("cpla2:647")
    assert row_channel_map({"CPLA2": "647", "5lo": "561"}, ["cpla2"]) == {"cpla2": "647"}
    with pytest.raises(ChannelError, match="maps 5lo, flap; the model takes cpla2") as err:
        row_channel_map({"5lo": "561", "flap": "647"}, ["cpla2"], path="f.txt")
    assert "f.txt" in str(err.value) and "no cpla2" in str(err.value)


def _two_colour_files(tmp_path):
    """Two two-channel files (channels 1 and 2; 200 and 400 localizations, then 400 and 200)."""
    from ainu_engine.io import Localizations, Metadata, write

    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        x, y = rng.normal(5000, 1500, (2, 600))
        ch = np.repeat([1, 2], [200, 400]) if k == 0 else np.repeat([1, 2], [400, 200])
        meta = Metadata(channel_names={1: "561", 2: "647"})
        p = tmp_path / f"f{k}.csv"
        write(Localizations(x, y, channel=ch, frame=np.arange(600), meta=meta), p)
        paths.append(p)
    return paths


def test_manifest_channel_maps_follow_each_row_and_refuse_two_maps_for_one_file(tmp_path):
    from ainu_engine.errors import InputError
    from ainu_engine.render import manifest_channel_maps

    a, b = _two_colour_files(tmp_path)
    m = tmp_path / "m.csv"
    m.write_text(f"path,label,channels\n{a.name},x,polII=647;h3=561\n{b.name},y,polII=561\n")
    maps = manifest_channel_maps([m, tmp_path])  # a folder gives no maps
    assert maps == {str(a.resolve()): {"polII": "647", "h3": "561"},
                    str(b.resolve()): {"polII": "561"}}  # fmt: skip
    shared = tmp_path / "shared.csv"  # channel names shared by every file: not per-file maps
    shared.write_text(f"path,label,channels\n{a.name},x,polII+h3\n")
    assert manifest_channel_maps([shared]) == {}
    twice = tmp_path / "twice.csv"
    twice.write_text(f"path,label,channels\n{a.name},x,polII=647\n{a.name},x,polII=561\n")
    with pytest.raises(InputError, match="two different channel maps"):
        manifest_channel_maps([twice])


def test_a_classifier_renders_each_file_with_its_rows_channel(tmp_path):
    from ainu_engine import Classifier
    from ainu_engine.io import read
    from ainu_engine.render import manifest_channel_maps

    a, b = _two_colour_files(tmp_path)
    m = tmp_path / "m.csv"
    # by channel id: a CSV table keeps no channel names
    m.write_text(f"path,label,channels\n{a.name},x,polII=2;h3=1\n{b.name},y,polII=1\n")
    kw = {"backend": "onnxruntime", "device": "cpu", "render_device": "cpu"}
    with Classifier.load(MODEL, file_channel_maps=manifest_channel_maps([m]), **kw) as clf:
        # 400 localizations in a's channel 2 and in b's 1: each file's own polII channel
        assert [clf.for_path(p).prepare(read(p)).n_localizations for p in (a, b)] == [[400]] * 2
        assert clf.for_path(a) is clf.for_path(a)  # one copy per file
        with pytest.raises(ChannelError, match="--channel-map"):  # no map: two channels
            clf.for_path(tmp_path / "other.csv").prepare(read(a))
