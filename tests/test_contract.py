"""The data contract: tiny valid datasets validate; each kind of corruption is rejected by name."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geneface.data import contract
from geneface.data.corpus import read_index, write_clip
from geneface.data.frames import SpeakerFrames, arrays, train_indices, val_indices
from geneface.data.speaker import write_speaker_dataset
from geneface.data.validate import DatasetError, ValidationReport, validate

T = 22  # frames in the tiny speaker
REPO = Path(__file__).resolve().parents[1]


def corrupt_copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "corrupt" / src.name
    shutil.copytree(src, dst)
    return dst


def rejected(root: Path) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        validate(root)
    return info.value


# --- valid data -------------------------------------------------------------------------------

def test_tiny_speaker_validates(tiny_speaker: Path):
    report = validate(tiny_speaker)
    assert isinstance(report, ValidationReport)
    assert (report.kind, report.name, report.num_frames) == ("speaker", "tiny", T)
    assert (report.height, report.width) == (32, 32)
    assert report.num_train == contract.num_train_frames(T) == 20 and report.num_val == 2
    assert report.duration_s == pytest.approx(T / 25)
    assert "speaker dataset 'tiny'" in report.summary()


def test_tiny_corpus_validates(tiny_corpus: Path):
    report = validate(tiny_corpus)
    assert (report.kind, report.num_clips, report.num_speakers) == ("corpus", 6, 2)
    assert report.num_train >= 1 and report.num_val >= 1 and report.clips_checked == 6
    assert validate(tiny_corpus, max_clips=2).clips_checked == 2
    assert "6 clips from 2 speakers" in report.summary()


def test_speaker_frames_reader(tiny_speaker: Path, make_speaker_inputs):
    inputs = make_speaker_inputs()
    ds = SpeakerFrames(tiny_speaker)
    assert len(ds) == T
    image, labels = ds.image(3), ds.labels(3)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(labels, inputs["labels"][3])
    assert np.abs(image.astype(int) - inputs["frames"][3]).mean() < 4   # JPEG; RGB order kept
    np.testing.assert_array_equal(ds.background(), inputs["background"])   # PNG is lossless
    assert ds[-1]["index"] == T - 1
    with pytest.raises(IndexError):
        ds[T]
    arr = arrays(tiny_speaker)
    assert isinstance(arr["mel"], np.memmap) and arr["mel"].shape == (2 * T, 80)
    assert "hubert" not in arr
    assert list(train_indices(ds.meta)) == list(range(20)) and list(val_indices(ds.meta)) == [20, 21]


# --- speaker corruptions ----------------------------------------------------------------------

def test_missing_meta_is_incomplete(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    (root / "meta.json").unlink()
    err = rejected(root)
    assert "incomplete" in str(err) and "meta.json" in str(err)
    assert err.path == root / "meta.json"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_missing_array_file(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    (root / "head_t.npy").unlink()
    err = rejected(root)
    assert "head_t.npy" in str(err) and "missing" in str(err)


def test_wrong_shape(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    np.save(root / "head_R.npy", np.zeros((T, 3, 4), np.float32))
    msg = str(rejected(root))
    assert "'head_R'" in msg and f"({T}, 3, 3)" in msg and f"({T}, 3, 4)" in msg


def test_wrong_dtype(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    np.save(root / "face_rect.npy", np.zeros((T, 4), np.float32))
    msg = str(rejected(root))
    assert "'face_rect'" in msg and "float32" in msg and "int32" in msg


def test_audio_feature_count_mismatch(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    np.save(root / "mel.npy", np.zeros((2 * T - 2, 80), np.float32))
    msg = str(rejected(root))
    assert f"audio features have {2 * T - 2} frames but the video has {T} frames" in msg
    assert "expected exactly 2 per video frame (2T" in msg


def test_audio_wav_length(tiny_speaker: Path, tmp_path: Path):
    import soundfile as sf

    root = corrupt_copy(tiny_speaker, tmp_path)
    sf.write(root / "audio.wav", np.zeros(T * 640 - 1), 16000, subtype="PCM_16")
    msg = str(rejected(root))
    assert "audio.wav" in msg and str(T * 640) in msg


def test_missing_frame_image(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    (root / "frames" / "000007.jpg").unlink()
    err = rejected(root)
    assert "frames/000007.jpg" in str(err) and err.path.name == "000007.jpg"


def test_extra_label_file(tiny_speaker: Path, tmp_path: Path):
    root = corrupt_copy(tiny_speaker, tmp_path)
    shutil.copy(root / "labels" / "000000.png", root / "labels" / f"{T:06d}.png")
    assert f"{T:06d}.png" in str(rejected(root))


def test_bad_label_values(tiny_speaker: Path, tmp_path: Path):
    import cv2

    root = corrupt_copy(tiny_speaker, tmp_path)
    cv2.imwrite(str(root / "labels" / "000000.png"), np.full((32, 32), 7, np.uint8))
    msg = str(rejected(root))
    assert "000000.png" in msg and "[7]" in msg


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(schema_version=2), ["schema_version is 2"]),
    (lambda m: m.pop("focal"), ["'focal'"]),
    (lambda m: m.update(num_train=T), ["num_train is 22", "20"]),
])
def test_bad_meta(tiny_speaker: Path, tmp_path: Path, change, words):
    root = corrupt_copy(tiny_speaker, tmp_path)
    meta = json.loads((root / "meta.json").read_text())
    change(meta)
    (root / "meta.json").write_text(json.dumps(meta))
    msg = str(rejected(root))
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize("name, edit, words", [
    ("idexp_lm3d", lambda a: a.__setitem__((3, 5, 1), np.nan), ["'idexp_lm3d'", "NaN", "[3, 5, 1]"]),
    ("idexp_lm3d_std", lambda a: a.__setitem__((0, 0), 0.0), ["idexp_lm3d_std", "> 0"]),
    ("landmarks68", lambda a: a.__setitem__((4, 50, 0), a[4, 50, 0] + 1), ["frame 4, point 50"]),
    ("c2w", lambda a: a.__setitem__((2, 0, 3), a[2, 0, 3] + 1), ["c2w[2]"]),
])
def test_bad_values(tiny_speaker: Path, tmp_path: Path, name, edit, words):
    root = corrupt_copy(tiny_speaker, tmp_path)
    array = np.load(root / f"{name}.npy")
    edit(array)
    np.save(root / f"{name}.npy", array)
    msg = str(rejected(root))
    assert all(w in msg for w in words), msg


# --- corpus corruptions -----------------------------------------------------------------------

def test_corpus_clip_mel_length_mismatch(tiny_corpus: Path, tmp_path: Path, make_clip_arrays):
    root = corrupt_copy(tiny_corpus, tmp_path)
    entry = read_index(root)[0]
    speaker, clip = entry.item_id.split("/")
    bad = make_clip_arrays(entry.num_frames)
    bad["mel"] = bad["mel"][:-2]
    write_clip(root, speaker, clip, bad)
    err = rejected(root)
    assert err.path == root / entry.path
    n = entry.num_frames
    assert f"audio features have {2 * n - 2} frames but the video has {n}" in str(err)


def test_corpus_index_lists_missing_clip(tiny_corpus: Path, tmp_path: Path):
    root = corrupt_copy(tiny_corpus, tmp_path)
    entry = read_index(root)[2]
    (root / entry.path).unlink()
    err = rejected(root)
    assert err.path == root / entry.path
    assert entry.item_id in str(err) and "does not exist" in str(err)


def test_corpus_num_frames_mismatch(tiny_corpus: Path, tmp_path: Path):
    root = corrupt_copy(tiny_corpus, tmp_path)
    lines = (root / "index.tsv").read_text().splitlines()
    fields = lines[1].split("\t")
    fields[3] = str(int(fields[3]) + 1)
    lines[1] = "\t".join(fields)
    (root / "index.tsv").write_text("\n".join(lines) + "\n")
    assert "index.tsv says" in str(rejected(root))


def test_corpus_bad_split_and_missing_index(tiny_corpus: Path, tmp_path: Path):
    root = corrupt_copy(tiny_corpus, tmp_path)
    text = (root / "index.tsv").read_text()
    (root / "index.tsv").write_text(text.replace("\tval\n", "\ttest\n"))
    assert "split is 'test'" in str(rejected(root))
    (root / "index.tsv").write_text(text.replace("\tval\n", "\ttrain\n"))
    assert "the val split is empty" in str(rejected(root))
    (root / "index.tsv").unlink()
    assert "missing index.tsv" in str(rejected(root))


# --- the command line -------------------------------------------------------------------------

def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geneface.data.check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli(tiny_speaker: Path, tiny_corpus: Path, tmp_path: Path):
    ok = run_check(str(tiny_speaker))
    assert ok.returncode == 0, ok.stderr
    assert "OK: speaker dataset 'tiny'" in ok.stdout and "22 frames" in ok.stdout
    ok = run_check(str(tiny_corpus), "--max-clips", "3")
    assert ok.returncode == 0, ok.stderr
    assert "corpus 'tiny_corpus'" in ok.stdout and "3 of 6 clips" in ok.stdout

    root = corrupt_copy(tiny_speaker, tmp_path)
    (root / "landmarks68.npy").unlink()
    bad = run_check(str(root))
    assert bad.returncode == 1 and bad.stdout == ""
    assert "landmarks68.npy" in bad.stderr and "missing array file" in bad.stderr

    help_ = run_check("--help")
    assert help_.returncode == 0 and "--max-clips" in help_.stdout


# --- atomic writes ----------------------------------------------------------------------------

def test_failed_write_leaves_nothing(tmp_path: Path, make_speaker_inputs):
    inputs = make_speaker_inputs(num_frames=12)
    inputs["frames"] = inputs["frames"][:-1]          # fewer frames than landmark frames
    target = tmp_path / "speakers" / "broken"
    with pytest.raises(ValueError, match="frames"):
        write_speaker_dataset(target, **inputs)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []         # no temporary directory left behind


def test_failed_rewrite_keeps_the_old_dataset(tiny_speaker: Path, make_speaker_inputs):
    inputs = make_speaker_inputs(num_frames=12, seed=1)
    inputs["labels"] = inputs["labels"][:5]
    with pytest.raises(ValueError):
        write_speaker_dataset(tiny_speaker, **inputs)
    assert validate(tiny_speaker).num_frames == T
    assert sorted(p.name for p in tiny_speaker.parent.iterdir()) == ["tiny"]


@pytest.mark.parametrize(("edit", "words"), [(lambda a: a.pop("head_t"), "missing arrays ['head_t']"),
                                             (lambda a: a.update(lips=a["head_t"]), "arrays ['lips'] are not in "
                                              "the data contract (docs/data_format.md)")])
def test_a_writer_given_arrays_off_the_contract_names_them(tmp_path: Path, make_clip_arrays, edit, words):
    arrays = make_clip_arrays(6)
    edit(arrays)
    with pytest.raises(ValueError, match=re.escape(f"clip s1/c1: {words}")):
        write_clip(tmp_path, "s1", "c1", arrays)
    assert not (tmp_path / contract.CORPUS_CLIPS_DIR).exists()          # nothing written


# --- docs/data_format.md agrees with contract.py ----------------------------------------------

def test_docs_match_contract():
    import re

    from geneface.data.landmarks import MEDIAPIPE_TO_IBUG68

    text = (REPO / "docs" / "data_format.md").read_text()
    speaker = text.split("## Speaker dataset")[1].split("## Corpus dataset")[0]
    corpus = text.split("## Corpus dataset")[1].split("## Coordinate conventions")[0]
    for section, specs in ((speaker, contract.SPEAKER_ARRAYS), (corpus, contract.CLIP_ARRAYS)):
        for spec in specs:
            shape = "(" + ", ".join(map(str, spec.shape)) + ("," if len(spec.shape) == 1 else "") + ")"
            rows = [line for line in section.splitlines() if line.startswith(f"| `{spec.name}`")]
            assert rows and spec.dtype in rows[0] and shape in rows[0], (spec.name, rows)
    for key in contract.SPEAKER_META_KEYS:
        assert f"`{key}`" in speaker, key
    for key in (*contract.CORPUS_META_KEYS, *contract.INDEX_COLUMNS):
        assert f"`{key}`" in corpus, key
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 12 and cells[0].isdigit():
            for k in range(0, 12, 3):
                table[int(cells[k])] = int(cells[k + 1])
    assert table == dict(enumerate(MEDIAPIPE_TO_IBUG68))
    assert f"now {contract.SCHEMA_VERSION}" in text and re.search(r"16 kHz mono", text)
