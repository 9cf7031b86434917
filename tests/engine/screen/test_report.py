"""report.html: the gallery, the table that sorts and filters, the viewer and the CSV download,
in a real browser (headless Chromium through Selenium; skipped with the reason where there is
none), and what the page is made of without one."""

from __future__ import annotations

import csv
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from ainu_engine.screen import screen

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)  # fmt: skip
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report_run(screen_batch, tmp_path_factory):
    """A screen of the shared batch (two folders, files of two nuclei, one bad file) with two
    occlusion maps: its output folder."""
    from ainu_engine.explain import explain_prepared

    model, data, _ = screen_batch
    out = tmp_path_factory.mktemp("report") / "out"
    screen([data], model, out, explain=2, explainer=explain_prepared, csv=True)
    return out


def _payload(html: str) -> dict:
    m = re.search(r"<script type='application/json' id='ainu-data'>(.*?)</script>", html, re.S)
    assert m, "the page carries its data"
    return json.loads(m.group(1))


# -- without a browser ------------------------------------------------------------------------


def test_results_leave_out_the_thumbnails_the_report_has(report_run):
    import pyarrow.parquet as pq

    results = pq.read_table(report_run / "results.parquet")
    assert "thumbnail" not in results.column_names
    with open(report_run / "results.csv", newline="") as fh:
        assert "thumbnail" not in next(csv.reader(fh))
    doc = _payload((report_run / "report.html").read_text())
    assert len(doc["rows"]) == results.num_rows == len(doc["thumbs"])
    assert doc["channels"] == ["polII", "h3"]
    # one JPEG per channel per nucleus, at most 64 px, a few kB each
    from io import BytesIO

    from PIL import Image

    for t in doc["thumbs"]:
        assert t is not None and len(t) == 2
        for b in t:
            import base64

            raw = base64.b64decode(b)
            im = Image.open(BytesIO(raw))
            assert im.format == "JPEG" and max(im.size) <= 64 and len(raw) < 8000
    assert len(doc["overlays"]) == 2  # the two nuclei --explain mapped
    assert all(v["map"] and v["figure"] for v in doc["overlays"].values())


def test_page_is_self_contained(report_run):
    html = (report_run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html), "nothing from a network"
    assert "blue = evidence for the call, red = against" in html


def test_data_cannot_end_the_script_early(tmp_path, report_run):
    """A file named like an HTML tag stays text: the JSON in the page never contains '</'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ainu_engine.model import read_model_info
    from ainu_engine.screen._report import write_report

    parts = sorted((report_run / "parts").glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    src = table.column("source").to_pylist()
    src[0] = "/data/</script><script>alert(1)</script>.csv"
    table = table.set_column(table.column_names.index("source"), "source", pa.array(src))
    area = table.column("area_um2").to_pylist()
    area[1] = float("nan")
    table = table.set_column(table.column_names.index("area_um2"), "area_um2", pa.array(area))
    doc = json.loads((report_run / "summary.json").read_text())
    out = write_report(tmp_path / "r.html", table, doc, read_model_info(doc["model"]), [])
    html = out.read_text()
    data = _payload(html)
    assert data["rows"][0][-1] == src[0]
    assert data["rows"][1][[c[0] for c in data["columns"]].index("area_um2")] is None


def test_explain_maps_of_files_with_the_same_stem_do_not_overwrite(screen_model, tmp_path):
    """a.bin and a.csv each keep their own map (the second once overwrote the first)."""
    from ainu_engine.explain import explain_prepared

    model, _, data = screen_model
    (tmp_path / "in").mkdir()
    first = sorted((data / "slideA").glob("*.bin"))[0]
    shutil.copy(first, tmp_path / "in" / "a.bin")
    shutil.copy(first.with_name(first.name + ".json"), tmp_path / "in" / "a.bin.json")  # pixel
    shutil.copy(sorted((data / "slideB").glob("*.csv"))[0], tmp_path / "in" / "a.csv")
    screen([tmp_path / "in"], model, tmp_path / "out", explain=5, explainer=explain_prepared)
    recs = [json.loads(line) for line in (tmp_path / "out" / "explain" / "explain.jsonl")
            .read_text().splitlines()]  # fmt: skip
    maps = [r["map"] for r in recs]
    assert len(recs) == 2 and len(set(maps)) == 2
    assert all(Path(m).is_file() for m in maps)


# -- in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no headless Chromium here (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is needed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900"):  # fmt: skip
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    downloads = tmp_path_factory.mktemp("downloads")
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


def _open(browser, path: Path):
    browser.get(path.resolve().as_uri())
    browser.get_log("browser")  # what an earlier page logged
    browser.refresh()


def _column(browser, header: str) -> list[str]:
    heads = [th.text.strip() for th in browser.find_elements("css selector", "#nuclei-table th")]
    k = heads.index(header) + 1
    return [td.text for td in browser.find_elements(
        "css selector", f"#nuclei-rows tr td:nth-child({k})")]  # fmt: skip


def _images_decoded(browser) -> tuple[int, int]:
    return tuple(browser.execute_script(
        "const im = Array.from(document.images);"
        "return [im.length, im.filter(i => i.complete && i.naturalWidth > 0).length];"
    ))  # fmt: skip


def test_page_loads_without_console_errors_and_every_image_decodes(browser, report_run):
    _open(browser, report_run / "report.html")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    n, decoded = _images_decoded(browser)
    n_rows = len(_payload((report_run / "report.html").read_text())["rows"])
    assert n >= 2 * n_rows + 2 + 3  # two channels a card, two maps, the plots
    assert decoded == n
    cards = browser.find_elements("css selector", "#gallery .card")
    assert len(cards) == n_rows
    assert browser.find_element("id", "shown").text == f"{n_rows} of {n_rows} nuclei"


def test_sorting_and_filtering_change_the_rows(browser, report_run):
    _open(browser, report_run / "report.html")
    header = browser.find_element("xpath", "//th[normalize-space()='p(hiPSC)']")
    before = _column(browser, "p(hiPSC)")
    header.click()
    asc = _column(browser, "p(hiPSC)")
    assert [float(v) for v in asc] == sorted(float(v) for v in before)
    header.click()
    desc = _column(browser, "p(hiPSC)")
    assert desc == asc[::-1] or [float(v) for v in desc] == sorted(map(float, asc), reverse=True)
    # the gallery follows the table's order
    first = _column(browser, "nucleus")[0] or _column(browser, "file")[0]
    card = browser.find_element("css selector", "#gallery .card").text.splitlines()
    assert card[0] == first

    from selenium.webdriver.support.ui import Select

    doc = _payload((report_run / "report.html").read_text())
    k = [c[0] for c in doc["columns"]].index("predicted")
    for c in doc["classes"]:
        Select(browser.find_element("id", "call")).select_by_value(c)
        calls = _column(browser, "call")
        assert len(calls) == sum(r[k] == c for r in doc["rows"])
        assert set(calls) <= {c}
        assert len(browser.find_elements("css selector", "#gallery .card")) == len(calls)
    Select(browser.find_element("id", "call")).select_by_value("")
    box = browser.find_element("id", "filter")
    box.send_keys("slideB")
    paths = _column(browser, "path")
    assert paths and all("slideB" in p for p in paths) and len(paths) < len(before)
    box.clear()
    box.send_keys("no such nucleus")
    assert _column(browser, "path") == []
    assert browser.find_element("id", "shown").text.startswith("0 of ")


def test_viewer_opens_a_nucleus_with_its_channels(browser, report_run):
    _open(browser, report_run / "report.html")
    browser.find_elements("css selector", "#nuclei-rows tr")[0].click()
    viewer = browser.find_element("id", "viewer")
    assert "open" in viewer.get_attribute("class")
    figs = viewer.find_elements("css selector", "figure")
    captions = [f.text for f in figs]
    assert captions[:2] == ["polII", "h3"]
    n, decoded = _images_decoded(browser)
    assert decoded == n
    from selenium.webdriver.common.keys import Keys

    browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    assert "open" not in viewer.get_attribute("class")


def test_csv_download_has_the_rows_shown(browser, report_run):
    from selenium.webdriver.support.ui import Select

    _open(browser, report_run / "report.html")
    Select(browser.find_element("id", "call")).select_by_value("hiPSC")
    shown = len(_column(browser, "call"))
    target = browser.downloads / "nuclei.csv"
    target.unlink(missing_ok=True)
    browser.find_element("id", "csv").click()
    deadline = time.monotonic() + 20
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == shown and {r["predicted"] for r in rows} == {"hiPSC"}
    assert all(r["source"] for r in rows)


def test_gallery_is_capped_and_the_table_pages(browser, report_run, tmp_path):
    """250 nuclei (the screen's rows, renamed), a gallery of 30: 30 cards, 3 table pages, and
    sorting brings other nuclei into the gallery."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ainu_engine.model import read_model_info
    from ainu_engine.screen._report import write_report

    parts = sorted((report_run / "parts").glob("part-*.parquet"))
    base = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    k = -(-250 // base.num_rows)
    table = pa.concat_tables([base] * k).slice(0, 250)
    table = table.set_column(table.column_names.index("nucleus_id"), "nucleus_id",
                             pa.array([f"n{i:03d}" for i in range(250)]))  # fmt: skip
    doc = json.loads((report_run / "summary.json").read_text())
    page = write_report(tmp_path / "big.html", table, doc, read_model_info(doc["model"]), [],
                        gallery=30)  # fmt: skip
    _open(browser, page)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert len(browser.find_elements("css selector", "#gallery .card")) == 30
    assert browser.find_element("id", "page").text == "page 1 of 3"
    assert len(browser.find_elements("css selector", "#nuclei-rows tr")) == 100
    first = _column(browser, "nucleus")[0]
    browser.find_element("id", "next").click()
    assert browser.find_element("id", "page").text == "page 2 of 3"
    assert _column(browser, "nucleus")[0] == "n100"
    browser.find_element("xpath", "//th[normalize-space()='nucleus']").click()
    browser.find_element("xpath", "//th[normalize-space()='nucleus']").click()  # descending
    assert browser.find_element("id", "page").text == "page 1 of 3"
    assert _column(browser, "nucleus")[0] == "n249" != first
    assert "n249" in browser.find_elements("css selector", "#gallery .card")[0].text


def test_screenshot_has_the_report_structure(browser, report_run, tmp_path):
    """The screenshot compared by structure, not pixels: the sections in order down the page,
    the gallery's cards in rows of the same height, and each card's pictures painted (not
    blank) in the screenshot itself."""
    import numpy as np
    from PIL import Image

    _open(browser, report_run / "report.html")
    browser.set_window_size(1200, 900)
    tops = browser.execute_script(
        "return ['nuclei-controls', 'gallery', 'nuclei-table'].map("
        "id => document.getElementById(id).getBoundingClientRect().top)"
        ".concat([document.querySelector('img[alt=plot]').getBoundingClientRect().top]);"
    )
    assert tops == sorted(tops), "controls, gallery, table, plots, in that order"
    cards = browser.execute_script(
        "return Array.from(document.querySelectorAll('#gallery .card')).map(c => {"
        "const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];});"
    )
    assert len({round(c[3]) for c in cards}) == 1, "cards of one height"
    rows = sorted({round(c[1]) for c in cards})
    per_row = [sum(1 for c in cards if round(c[1]) == t) for t in rows]
    assert per_row[0] >= min(len(cards), 4), "cards side by side, not one a line"
    browser.execute_script("document.getElementById('gallery').scrollIntoView();")
    shot = tmp_path / "shot.png"
    browser.save_screenshot(str(shot))
    img = np.asarray(Image.open(shot).convert("L"), float)
    ratio = browser.execute_script("return window.devicePixelRatio") or 1
    thumbs = browser.execute_script(
        "return Array.from(document.querySelectorAll('#gallery .card img')).map(i => {"
        "const r = i.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];})"
        ".filter(r => r[1] >= 0 && r[1] + r[3] <= window.innerHeight);"
    )
    assert thumbs, "some thumbnails are on screen"
    for x, y, w, h in thumbs:
        x0, y0 = int(x * ratio), int(y * ratio)
        region = img[y0 : y0 + int(h * ratio), x0 : x0 + int(w * ratio)]
        assert region.size and region.std() > 10, "a painted picture, not a blank box"
    # the page's margin stays white: the report has its background
    assert img[:, :10].mean() > 250
