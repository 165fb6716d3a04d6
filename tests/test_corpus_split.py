"""The speaker-disjoint corpus split: whole speakers validate (people the models never saw), chosen by
a stable hash of the name; the corpus command uses it, and re-running it re-splits a processed corpus
without re-processing a clip."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geneface.data.corpus import finalize_corpus, read_index, speaker_hash, speaker_split, write_clip
from geneface.data.validate import validate

REPO = Path(__file__).resolve().parents[1]
SHARED_INDEX = REPO / "outputs" / "data" / "shared_corpus" / "index.tsv"


def _corpus(root: Path, make_clip_arrays, speakers: dict[str, int]) -> Path:
    for s, (speaker, clips) in enumerate(speakers.items()):
        for c in range(clips):
            write_clip(root, speaker, f"{c:05d}", make_clip_arrays(40, seed=10 * s + c))  # ≥ min_frames 32
    return root


def test_whole_speakers_validate_by_the_hash_of_their_name(tmp_path, make_clip_arrays):
    speakers = {f"person{k:02d}": 1 + k % 3 for k in range(30)}
    root = _corpus(tmp_path / "c", make_clip_arrays, speakers)
    entries = finalize_corpus(root, "c", split_by="speaker", val_speaker_fraction=0.2)
    by_speaker: dict[str, set[str]] = {}
    for e in entries:
        by_speaker.setdefault(e.speaker, set()).add(e.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())              # no speaker in both
    val = {s for s, splits in by_speaker.items() if splits == {"val"}}
    assert val == {s for s in speakers if speaker_hash(s) < 0.2} and 0 < len(val) < len(speakers)
    assert [e.split for e in read_index(root)] == [e.split for e in entries]
    report = validate(root)
    assert report.num_val == sum(speakers[s] for s in val)


def test_a_speakers_split_does_not_change_as_the_corpus_grows(tmp_path, make_clip_arrays):
    root = _corpus(tmp_path / "c", make_clip_arrays, {f"p{k}": 1 for k in range(12)})
    before = {e.speaker: e.split for e in finalize_corpus(root, "c", split_by="speaker")}
    _corpus(root, make_clip_arrays, {f"new{k}": 1 for k in range(12)})
    after = {e.speaker: e.split for e in finalize_corpus(root, "c", split_by="speaker")}
    assert {s: after[s] for s in before} == before


def test_few_speakers_still_get_both_splits_and_bad_rules_are_named(tmp_path, make_clip_arrays):
    root = _corpus(tmp_path / "c", make_clip_arrays, {"a": 2, "b": 1})
    entries = finalize_corpus(root, "c", split_by="speaker", val_speaker_fraction=0.0)
    assert {e.split for e in entries} == {"train", "val"}                      # the smallest draw validates
    assert {e.speaker for e in entries if e.split == "val"} == {min("ab", key=speaker_hash)}
    entries = finalize_corpus(root, "c", split_by="speaker", val_speakers=["b"])
    assert {e.speaker: e.split for e in entries} == {"a": "train", "b": "val"}
    with pytest.raises(ValueError, match="not there: \\['nobody'\\]"):
        finalize_corpus(root, "c", split_by="speaker", val_speakers=["nobody"])
    with pytest.raises(ValueError, match="every speaker would validate"):
        finalize_corpus(root, "c", split_by="speaker", val_speaker_fraction=1.0)
    with pytest.raises(ValueError, match="split_by must be one of"):
        finalize_corpus(root, "c", split_by="person")
    lone = _corpus(tmp_path / "lone", make_clip_arrays, {"solo": 3})
    with pytest.raises(ValueError, match="at least 2 speakers"):
        finalize_corpus(lone, "lone", split_by="speaker")


def test_the_corpus_command_resplits_a_processed_corpus_by_speaker(tmp_path, make_clip_arrays):
    """The README's command: clips already on disk are skipped (no MediaPipe), index.tsv is rebuilt
    with the config's default split (by speaker)."""
    speakers = {f"person{k:02d}": 2 for k in range(10)}
    root = _corpus(tmp_path / "data" / "resplit", make_clip_arrays, speakers)
    finalize_corpus(root, "resplit", val_every=3)                              # the old per-clip split
    assert any(len({e.split for e in read_index(root) if e.speaker == s}) == 2 for s in speakers)
    src = tmp_path / "src"
    for speaker in speakers:                                                   # stand-ins: never decoded
        (src / speaker).mkdir(parents=True)
        for c in range(2):
            (src / speaker / f"{c:05d}.mp4").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "geneface.process.corpus", f"src={src}", "name=resplit",
                           f"data_dir={tmp_path / 'data'}", f"configs_dir={tmp_path / 'configs'}", "workers=1"],
                          cwd=REPO, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = read_index(root)
    assert all(len({e.split for e in entries if e.speaker == s}) == 1 for s in speakers)
    assert {e.speaker for e in entries if e.split == "val"} == {s for s in speakers if speaker_split(s, 0.2) == "val"}


@pytest.mark.skipif(not SHARED_INDEX.is_file(), reason="needs the processed shared corpus")
def test_the_shared_corpus_holds_out_about_a_fifth_of_its_people():
    with open(SHARED_INDEX, newline="") as f:
        speakers = sorted({r["speaker"] for r in csv.DictReader(f, delimiter="\t")})
    val = [s for s in speakers if speaker_split(s, 0.2) == "val"]
    assert val == ["grid_lbbc2a", "latentsync_m1", "lieu", "liveportrait_d12", "retalk2", "retalk4",
                   "vox_00098", "vox_7961"]                                    # 8 of 43 speakers
