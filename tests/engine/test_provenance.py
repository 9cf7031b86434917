"""Provenance of results: the git commit, or the one given where the tree is no checkout."""

from ainu_engine.provenance import git_commit


def test_a_checkout_reports_its_head():
    commit = git_commit()
    assert commit is None or len(commit.split("-")[0]) == 40  # None only where git is missing


def test_a_copy_without_git_uses_the_given_commit_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("AINU_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("AINU_GIT_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123 (AINU_GIT_COMMIT; no git checkout)"
