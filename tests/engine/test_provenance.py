"""Provenance of results: the git commit, or the one given where the tree is no checkout."""

from pathlib import Path

from ainu_engine.provenance import git_commit


def test_a_checkout_reports_its_head():
    commit = git_commit()
    assert commit is None or len(commit.split("-")[0]) == 40  # None only where git is missing


def test_a_copy_without_git_uses_the_given_commit_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("AINU_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("AINU_GIT_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123 (AINU_GIT_COMMIT; no git checkout)"


def test_results_record_the_engine_version(tmp_path):
    """The version from pyproject.toml (the one place it is set) in what the commands write."""
    import json
    import tomllib

    from ainu_engine import __version__
    from ainu_engine.cli import main
    from ainu_engine.provenance import stamp

    repo = Path(__file__).resolve().parents[2]
    assert __version__ == tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]
    cff = (repo / "CITATION.cff").read_text()
    assert f"\nversion: {__version__}\n" in cff  # the citation names the same release
    assert stamp() == {"ainu_engine_version": __version__}
    nucleus = repo / "examples" / "data" / "nucleus.parquet"
    assert main(["render", str(nucleus), "--out", str(tmp_path), "--image-format", "png"]) == 0
    (side,) = tmp_path.glob("*.png.json")
    assert json.loads(side.read_text())["ainu_engine_version"] == __version__
