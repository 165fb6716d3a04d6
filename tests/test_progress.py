"""geneface.utils.progress: what a child reports to the pipeline's display, and bars that draw nothing."""

from __future__ import annotations

from geneface.utils.progress import PROGRESS_ENV, progress_bar, read_progress


def test_a_bar_reports_its_count_to_the_progress_file(tmp_path, monkeypatch):
    target = tmp_path / "progress.json"
    monkeypatch.setenv(PROGRESS_ENV, str(target))
    for _ in progress_bar(range(7), desc="frames", unit="frame", disable=True):   # drawn or not, it reports
        pass
    record = read_progress(target)
    assert (record["what"], record["done"], record["total"], record["unit"]) == ("frames", 7, 7, "frame")
    bar = progress_bar(total=4, desc="render", unit="frame")
    bar.update(4)
    bar.close()
    assert read_progress(target)["what"] == "render" and read_progress(target)["done"] == 4


def test_without_a_progress_file_a_disabled_bar_still_counts_nothing_and_never_fails(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    bar = progress_bar(total=3, desc="x", disable=True)
    bar.update(1)                              # manual updates of a disabled bar (evaluate progress=false)
    bar.close()
    assert list(progress_bar(range(3), disable=True)) == [0, 1, 2]
    assert read_progress(tmp_path / "none.json") is None
