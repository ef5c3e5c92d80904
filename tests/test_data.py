"""Dataset readers and subset lists, on tiny fixtures written in each dataset's real format (including broken rows)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ran_core.data import (
    DATASET_NAMES,
    SUBSET_NAMES,
    DatasetSplit,
    Sample,
    SkipReport,
    class_balanced_weights,
    ferplus_target,
    landmarks_68_to_5,
    load_subset_lists,
    match_subset,
    open_dataset,
    read_subset_list,
)
from ran_core.data.affectnet import affectnet_key
from ran_core.data.base import cap_samples
from ran_core.data.ferplus import ferplus_key
from ran_core.data.rafdb import rafdb_key

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HASH_A = "83dac9d7eec7fb0bfef79b4d35ddc69a6f7fb458d3bffc4e78f33ad9"
HASH_B = "bc9ad400db82eca1882b11c9603348fb3e92f5b0d67391ac22a1bc79"
HASH_C = "3c028208c27c0be5fbe6a52738bebcbfb6c64f3220f523a84b267203"


def _image(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, 128).save(path)
    return path


def _ferplus_row(name: str, votes: list[int]) -> str:
    return f'{name},"(0, 0, 48, 48)",' + ",".join(str(v) for v in votes)


def _write_ferplus(root: Path) -> Path:
    """Train: 4 good rows + 6 broken ones. Test: the ids the authors' lists name."""
    train = root / "FER2013Train"
    for i in range(5):
        _image(train / f"fer000000{i}.png")
    rows = [
        _ferplus_row("fer0000000.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # neutral
        _ferplus_row("fer0000001.png", [0, 8, 1, 1, 0, 0, 0, 0, 0, 0]),  # happiness
        _ferplus_row("fer0000002.png", [0, 0, 0, 0, 0, 0, 0, 2, 0, 0]),  # contempt
        _ferplus_row("fer0000003.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),  # tie: no majority
        _ferplus_row("fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8]),  # not a face
        _ferplus_row("fer0000009.png", [0, 0, 6, 0, 0, 0, 0, 0, 0, 0]),  # image missing
        'fer0000010.png,"(0, 0, 48, 48)",1,2,3',  # too few columns
        _ferplus_row("fer0000011.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).replace(",0,0,0,0", ",x,0,0,0", 1),
        _ferplus_row("fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # duplicate
        "",
    ]
    (train / "label.csv").write_text("\n".join(rows))
    test = root / "FER2013Test"
    rows = []
    for i, name in enumerate(["fer0032226", "fer0032227", "fer0034656", "fer0035800"]):
        _image(test / f"{name}.png")
        votes = [0] * 10
        votes[i % 3] = 9
        rows.append(_ferplus_row(f"{name}.png", votes))
    (test / "label.csv").write_text("\r\n".join(rows) + "\r\n")
    return root


def _write_rafdb(root: Path) -> Path:
    lines = [
        "train_00001.jpg 5",
        "train_00002.jpg 1",
        "train_00003.jpg 8",  # unknown label
        "train_00004.jpg x",  # malformed
        "train_00005.jpg",  # malformed
        "train_00006.jpg 7",  # image missing
        "test_0003.jpg 4",
        "test_0004.jpg 1",
        "test_0006.jpg 5",
        "",
    ]
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_bytes("\r\n".join(lines).encode())
    for stem in ["train_00001", "train_00002", "train_00003", "train_00004", "test_0003", "test_0004", "test_0006"]:
        _image(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
    return root


def _landmark_text(offset: float = 0.0) -> str:
    pts = np.stack([np.arange(68) + offset, np.arange(68) * 2.0], axis=1)
    return ";".join(f"{v:.2f}" for v in pts.reshape(-1))


def _write_affectnet(root: Path) -> Path:
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    lm = _landmark_text()
    rows = [
        f"689/{HASH_A}.jpg,10,20,100,120,{lm},1,0.5,0.2",
        f"12/{HASH_B}.png,0,0,50,50,{lm},7,0.1,0.1",  # contempt
        f"12/{HASH_C}.jpg,0,0,50,50,{lm},0,0.1,0.1",  # directly under ROOT
        f"12/{'a' * 56}.jpg,0,0,50,50,{lm},9,0.1,0.1",  # uncertain: excluded
        f"12/{'b' * 56}.jpg,0,0,50,50,{lm},11,0.1,0.1",  # unknown expression
        f"12/{'c' * 56}.jpg,0,0,50,50,1;2;3,2,0.1,0.1",  # broken landmarks
        f"12/{'d' * 56}.jpg,0,0,50,50,{lm},sad,0.1,0.1",  # non-numeric expression
        f"12/{'e' * 56}.jpg,0,0,50,50,{lm},3,0.1,0.1",  # image missing
        f"12/{'f' * 56}.jpg,0,0,50,50",  # too few columns
    ]
    (root / "training.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "training.csv").write_text("\n".join([header] + rows) + "\n")
    (root / "validation.csv").write_text("\n".join([header, rows[0], rows[2]]) + "\n")
    for name in [f"689/{HASH_A}.jpg", f"12/{HASH_B}.png", f"12/{'a' * 56}.jpg", f"12/{'b' * 56}.jpg"]:
        _image(root / "Manually_Annotated_Images" / name, (64, 64))
    for name in [f"12/{'c' * 56}.jpg", f"12/{'d' * 56}.jpg", f"12/{HASH_C}.jpg"]:
        _image(root / name, (64, 64))
    return root


# ---------------------------------------------------------------- FERPlus


def test_ferplus_majority_rule():
    # Plain majority.
    assert ferplus_target([6, 2, 2, 0, 0, 0, 0, 0, 0, 0])[:1] == (0,)
    # A tie never passes "more than half".
    assert ferplus_target([4, 4, 0, 0, 0, 0, 0, 0, 0, 2])[2] == "no majority label"
    # 1-vote outliers are removed first: 4 of 8 votes is no majority, but 4 of 4 is once the single votes go.
    assert ferplus_target([4, 0, 2, 2, 0, 0, 0, 0, 0, 0])[2] == "no majority label"
    assert ferplus_target([4, 0, 1, 1, 1, 1, 0, 0, 0, 0]) == (0, None, None)
    # ... and they can turn a would-be majority into another one: 2 of 5 unknown + 3 votes of 1 -> happiness wins.
    assert ferplus_target([0, 3, 1, 1, 0, 0, 0, 0, 1, 0])[0] == 1
    # Unknown or not-a-face majorities are dropped.
    assert ferplus_target([1, 0, 0, 0, 0, 0, 0, 0, 8, 1])[2] == "majority unknown/not a face"
    assert ferplus_target([2, 0, 0, 0, 0, 0, 0, 0, 0, 8])[2] == "majority unknown/not a face"
    # No majority at all, and nothing left after outlier removal.
    assert ferplus_target([3, 3, 3, 1, 0, 0, 0, 0, 0, 0])[2] == "no majority label"
    assert ferplus_target([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])[2] == "no majority label"
    with pytest.raises(ValueError):
        ferplus_target([1, 2, 3])


def test_ferplus_probability_rule():
    label, soft, reason = ferplus_target([6, 1, 2, 0, 0, 0, 0, 2, 0, 0], "probability")
    assert reason is None and label == 0
    np.testing.assert_allclose(soft, [0.6, 0, 0.2, 0, 0, 0, 0, 0.2], atol=1e-6)
    assert soft.dtype == np.float32
    # Ties between emotions keep the image (argmax = first), ties with unknown go to the emotion.
    assert ferplus_target([4, 4, 0, 0, 0, 0, 0, 0, 0, 2], "probability")[0] == 0
    assert ferplus_target([3, 0, 0, 0, 0, 0, 0, 0, 3, 0], "probability")[0] == 0
    assert ferplus_target([2, 0, 0, 0, 0, 0, 0, 0, 3, 5], "probability")[2] == "mostly unknown/not a face"
    assert ferplus_target([1, 1, 0, 0, 0, 0, 0, 0, 0, 6], "probability")[2] == "no emotion votes"
    with pytest.raises(ValueError, match="label_mode"):
        ferplus_target([0] * 10, "soft")


def test_ferplus_reader_skips_and_warns(tmp_path, caplog):
    root = _write_ferplus(tmp_path / "ferplus")
    with caplog.at_level(logging.WARNING, logger="ran_core.data"):
        data = open_dataset("ferplus", root, "train")
    assert isinstance(data, DatasetSplit) and data.dataset == "ferplus" and data.split == "train"
    assert [s.key for s in data.samples] == ["fer0000000", "fer0000001", "fer0000002"]
    assert data.labels().tolist() == [0, 1, 7]
    assert data.labels().dtype == np.int64
    assert data.class_counts().tolist() == [1, 1, 0, 0, 0, 0, 0, 1]
    first = data.samples[0]
    assert first.path.is_absolute() and first.path.is_file()
    assert first.face_box == (0.0, 0.0, 48.0, 48.0) and first.soft is None
    assert data.skipped.counts == {
        "no majority label": 1,
        "majority unknown/not a face": 1,
        "missing file": 1,
        "malformed row": 2,
        "duplicate entry": 1,
    }
    assert data.skipped.examples["missing file"] == ["fer0000009.png"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "6 skipped" in warnings[0].getMessage() and "fer0000009.png" in warnings[0].getMessage()
    assert "malformed row: 2" in warnings[0].getMessage()


def test_ferplus_probability_mode(tmp_path):
    root = _write_ferplus(tmp_path / "ferplus")
    data = open_dataset("fer+", root, "train", label_mode="probability")
    assert data.label_mode == "probability"
    # The tie image is kept in probability mode; the NF one is not.
    assert [s.key for s in data.samples] == ["fer0000000", "fer0000001", "fer0000002", "fer0000003"]
    for s in data.samples:
        assert s.soft.shape == (8,) and abs(float(s.soft.sum()) - 1) < 1e-6 and s.label == int(np.argmax(s.soft))
    np.testing.assert_allclose(data.samples[3].soft, [0.5, 0.5, 0, 0, 0, 0, 0, 0])


def test_ferplus_missing_split_is_a_clear_error(tmp_path):
    root = _write_ferplus(tmp_path / "ferplus")
    with pytest.raises(FileNotFoundError, match="FER2013Valid"):
        open_dataset("ferplus", root, "valid")
    with pytest.raises(FileNotFoundError, match="not found"):
        open_dataset("ferplus", tmp_path / "nowhere", "train")


# ---------------------------------------------------------------- RAF-DB, AffectNet, folders


def test_rafdb_reader(tmp_path, caplog):
    root = _write_rafdb(tmp_path / "raf")
    with caplog.at_level(logging.WARNING, logger="ran_core.data"):
        train = open_dataset("raf-db", root, "train")
    assert [(s.key, s.label) for s in train.samples] == [("train_00001", 4), ("train_00002", 0)]
    assert train.class_names[4] == "sadness" and train.class_names[0] == "surprise"
    assert train.skipped.counts == {"unknown label": 1, "malformed row": 2, "missing file": 1}
    assert "train_00003.jpg 8" in caplog.text and "train_00006_aligned.jpg" in caplog.text
    test = open_dataset("rafdb", root, "test")
    valid = open_dataset("rafdb", root, "val")
    assert [s.key for s in test.samples] == ["test_0003", "test_0004", "test_0006"]
    assert [s.path for s in valid.samples] == [s.path for s in test.samples]
    assert test.samples[0].path.name == "test_0003_aligned.jpg"


def test_affectnet_reader(tmp_path, caplog):
    root = _write_affectnet(tmp_path / "affectnet")
    with caplog.at_level(logging.WARNING, logger="ran_core.data"):
        data = open_dataset("affectnet", root, "train")
    assert [s.label for s in data.samples] == [1, 7, 0]
    assert [s.key for s in data.samples] == [HASH_A, HASH_B, HASH_C]
    assert data.samples[2].path == (root / "12" / f"{HASH_C}.jpg").resolve()
    assert len(data.class_names) == 8 and data.class_names[7] == "contempt"
    first = data.samples[0]
    assert first.face_box == (10.0, 20.0, 110.0, 140.0)
    assert first.landmarks.shape == (5, 2) and first.landmarks.dtype == np.float32
    np.testing.assert_allclose(first.landmarks[0], [38.5, 77.0])  # mean of points 36-41
    assert data.skipped.counts == {
        "excluded expression": 1,
        "unknown label": 1,
        "malformed row": 3,
        "missing file": 1,
    }
    assert "uncertain" in caplog.text and "eeeeeeee" in caplog.text

    seven = open_dataset("affectnet", root, "train", num_classes=7)
    assert [s.label for s in seven.samples] == [1, 0] and len(seven.class_names) == 7
    assert seven.skipped.counts["excluded expression"] == 2
    assert [s.key for s in open_dataset("affectnet", root, "valid").samples] == [HASH_A, HASH_C]
    with pytest.raises(ValueError, match="7 or 8"):
        open_dataset("affectnet", root, "train", num_classes=6)


def test_landmarks_68_to_5():
    pts = np.zeros((68, 2))
    pts[36:42] = [10, 20]
    pts[42:48] = [30, 20]
    pts[30], pts[48], pts[54] = [20, 30], [12, 40], [28, 40]
    np.testing.assert_array_equal(landmarks_68_to_5(pts), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])


def test_sfew_reader(tmp_path):
    root = tmp_path / "sfew"
    _image(root / "Train" / "Angry" / "a1.png")
    _image(root / "Train" / "Happy" / "h1.jpg")
    _image(root / "Train" / "Happy" / "h2.jpg")
    _image(root / "Train" / "Contempt" / "c1.jpg")  # not an SFEW class
    (root / "Train" / "Happy" / "notes.txt").write_text("x")
    (root / "Train" / "Happy" / ".DS_Store").write_text("x")
    _image(root / "Val" / "Sad" / "s1.png")
    _image(root / "Test" / "t1.png")
    train = open_dataset("sfew", root, "train")
    assert train.class_names == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert [(s.key, s.label) for s in train.samples] == [("Angry/a1", 0), ("Happy/h1", 3), ("Happy/h2", 3)]
    assert train.skipped.counts == {"unknown class folder": 1, "not an image file": 1}
    valid = open_dataset("sfew", root, "valid")
    assert [(s.key, s.label) for s in valid.samples] == [("Sad/s1", 5)]
    test = open_dataset("sfew", root, "test")
    assert [(s.key, s.label) for s in test.samples] == [("t1", -1)]
    assert test.class_counts().sum() == 0
    with pytest.raises(ValueError, match="unlabelled"):
        class_balanced_weights(test)


def test_folder_reader_with_and_without_splits(tmp_path):
    split_root = tmp_path / "split"
    _image(split_root / "train" / "cat" / "1.png")
    _image(split_root / "train" / "dog" / "2.png")
    _image(split_root / "val" / "zebra" / "3.png")
    _image(split_root / "val" / "cat" / "4.png")
    valid = open_dataset("folder", split_root, "valid")
    assert valid.class_names == ["cat", "dog", "zebra"]
    assert [(s.key, s.label) for s in valid.samples] == [("cat/4", 0), ("zebra/3", 2)]
    with pytest.raises(FileNotFoundError, match="no test folder"):
        open_dataset("folder", split_root, "test")

    flat = tmp_path / "flat"
    _image(flat / "b" / "x.png")
    _image(flat / "a" / "y.png")
    _image(flat / "loose.png")
    data = open_dataset("folder", flat, "train", num_classes=2)
    assert data.class_names == ["a", "b"] and data.labels().tolist() == [0, 1]
    assert data.skipped.counts == {"image outside a class folder": 1}
    assert [s.path for s in open_dataset("folder", flat, "test").samples] == [s.path for s in data.samples]


def test_open_dataset_errors(tmp_path):
    root = _write_rafdb(tmp_path / "raf")
    with pytest.raises(ValueError, match="unknown dataset"):
        open_dataset("mnist", root, "train")
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("rafdb", root, "dev")
    with pytest.raises(ValueError, match="only ferplus"):
        open_dataset("rafdb", root, "train", label_mode="probability")
    with pytest.raises(ValueError, match="7 classes"):
        open_dataset("rafdb", root, "train", num_classes=8)
    with pytest.raises(FileNotFoundError, match="label file"):
        open_dataset("rafdb", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="training.csv"):
        open_dataset("affectnet", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="Val"):
        open_dataset("sfew", tmp_path, "valid")
    assert set(DATASET_NAMES) == {"ferplus", "rafdb", "affectnet", "sfew", "folder"}


# ---------------------------------------------------------------- sampling helpers


def _fake_split(labels: list[int], num_classes: int) -> DatasetSplit:
    samples = [Sample(path=Path(f"/x/{i}.png"), label=c, key=str(i)) for i, c in enumerate(labels)]
    return DatasetSplit("folder", "train", Path("/x"), [str(c) for c in range(num_classes)], samples)


def test_max_samples_is_stable_stratified_and_seeded(tmp_path):
    labels = [0] * 80 + [1] * 15 + [2] * 5
    split = _fake_split(labels, 3)
    picked = cap_samples(split.samples, 20, seed=0)
    keys = [int(s.key) for s in picked]
    assert len(picked) == 20 and keys == sorted(keys)
    assert np.bincount([s.label for s in picked], minlength=3).tolist() == [16, 3, 1]
    assert [s.key for s in cap_samples(split.samples, 20, seed=0)] == [s.key for s in picked]
    assert [s.key for s in cap_samples(split.samples, 20, seed=1)] != [s.key for s in picked]
    # Every class keeps a sample even when its share rounds to zero.
    assert set(s.label for s in cap_samples(split.samples, 3, seed=0)) == {0, 1, 2}
    assert len(cap_samples(split.samples, 500)) == 100
    with pytest.raises(ValueError):
        cap_samples(split.samples, 0)

    root = _write_affectnet(tmp_path / "affectnet")
    assert len(open_dataset("affectnet", root, "train", max_samples=2, seed=3)) == 2


def test_class_balanced_weights():
    split = _fake_split([0, 0, 0, 1, 2, 2], 4)
    w = class_balanced_weights(split)
    assert w.shape == (6,) and np.isclose(w.mean(), 1.0)
    per_class = np.bincount(split.labels(), weights=w)
    assert np.allclose(per_class[:3], per_class[0])


def test_skip_report():
    report = SkipReport()
    assert report.total == 0 and report.summary() == "nothing skipped"
    for i in range(7):
        report.add("missing file", f"img{i}.png")
    report.add("malformed row", "a,b")
    assert report.total == 8 and len(report.examples["missing file"]) == 5
    line = report.summary()
    assert "\n" not in line and line.startswith("8 skipped") and "missing file: 7" in line and "img4.png, ..." in line


# ---------------------------------------------------------------- subset lists


def _write_lists(root: Path) -> Path:
    """Each of the authors' list formats, with the real files' quirks (CRLF, repeats, no final newline)."""
    fer = root / "FERplus_dir"
    fer.mkdir(parents=True)
    (fer / "jianfei_occlusion_list.txt").write_bytes(b"1_fer0034656.png 8 0\r\n0_fer0099999.png 8 3\r\n")
    (fer / "pose_30_ferplus_list.txt").write_bytes(b"0/fer0032226.jpg\n1/fer0032227.jpg\n\n9/fer0032228.jpg\n")
    (fer / "pose_45_ferplus_list.txt").write_bytes(b"0/fer0032226.jpg\n")
    aff = root / "AffectNet_dir"
    aff.mkdir()
    (aff / "occlusion_affectnet_list.txt").write_bytes(f"val/0/{HASH_B}/\nval/1/{HASH_A}/\n".encode())
    (aff / "pose_30_affectnet_list.txt").write_bytes(f"1/{HASH_A}.jpg\n0/{HASH_C}.jpg\n1/{HASH_A}.jpg\n".encode())
    (aff / "pose_45_affectnet_list.txt").write_bytes(f"7/{HASH_C}/8.jpg\n".encode())
    raf = root / "RAF_DB_dir"
    raf.mkdir()
    (raf / "rafdb_occlusion_list.txt").write_bytes(
        b"test_0003_aligned 3 4\r\ntest_0006_aligned 4 3\r\ntest_0003_aligned 3 4\r\ngarbage\r\ntest_2001_aligned 3 3"
    )
    (raf / "val_raf_db_list.txt").write_bytes(b"0/test_0004_aligned.jpg\n4/test_0006_aligned.jpg\n")
    (raf / "val_raf_db_label.txt").write_bytes(b"2 7\n0\n4")
    (raf / "val_raf_db_list_45.txt").write_bytes(b"0/test_0004_aligned.jpg\n")
    (raf / "val_raf_db_label_45.txt").write_bytes(b"1 7\n0")
    return root


def test_key_normalisation_matches_the_list_spellings():
    assert {ferplus_key(n) for n in ["1_fer0034656.png", "0/fer0034656.jpg", "FER0034656.png"]} == {"fer0034656"}
    assert {rafdb_key(n) for n in ["test_0004.jpg", "0/test_0004_aligned.jpg", "test_0004_aligned"]} == {"test_0004"}
    spellings = [f"val/0/{HASH_A}/", f"0/{HASH_A}.jpg", f"7/{HASH_A}/8.jpg", f"689/{HASH_A.upper()}.JPG"]
    assert {affectnet_key(n) for n in spellings} == {HASH_A}


def test_subset_list_formats(tmp_path):
    root = _write_lists(tmp_path / "lists")
    fer = load_subset_lists("ferplus", root)
    assert set(fer) == set(SUBSET_NAMES)
    assert fer["occlusion"].keys == ["fer0034656", "fer0099999"]
    assert fer["occlusion"].labels == {"fer0034656": 1, "fer0099999": 0}
    # The label 9 is outside FERPlus' 8 classes: that line is skipped, as is the blank one.
    assert fer["pose30"].keys == ["fer0032226", "fer0032227"] and fer["pose30"].skipped_lines == 2

    aff = load_subset_lists("affectnet", root / "AffectNet_dir")
    assert aff["occlusion"].keys == [HASH_B, HASH_A] and aff["occlusion"].labels[HASH_A] == 1
    assert aff["pose30"].keys == [HASH_A, HASH_C] and aff["pose30"].duplicates == 1
    assert aff["pose45"].labels == {HASH_C: 7}

    raf = load_subset_lists("rafdb", root)
    occ = raf["occlusion"]
    assert occ.keys == ["test_0003", "test_0006", "test_2001"] and occ.duplicates == 1 and occ.skipped_lines == 1
    assert occ.labels == {"test_0003": 3, "test_0006": 4, "test_2001": 3}
    assert raf["pose30"].labels == {"test_0004": 0, "test_0006": 4}
    assert raf["pose45"].keys == ["test_0004"] and raf["pose45"].source.name == "val_raf_db_list_45.txt"


def test_companion_labels_fill_and_check(tmp_path, caplog):
    lst = tmp_path / "val_raf_db_list.txt"
    lst.write_text("test_0004_aligned.jpg\n2/test_0006_aligned.jpg\n")
    lab = tmp_path / "val_raf_db_label.txt"
    lab.write_text("2 7\n5\n4")
    with caplog.at_level(logging.WARNING):
        sub = read_subset_list("rafdb", "pose30", lst, lab)
    assert sub.labels == {"test_0004": 5, "test_0006": 2}
    assert "disagree" in caplog.text


def test_subset_lists_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="FERplus_dir"):
        load_subset_lists("ferplus", tmp_path)
    with pytest.raises(FileNotFoundError):
        load_subset_lists("ferplus", tmp_path / "missing")
    with pytest.raises(ValueError, match="subset lists"):
        load_subset_lists("sfew", tmp_path)
    only_pose = tmp_path / "one"
    only_pose.mkdir()
    (only_pose / "pose_45_ferplus_list.txt").write_text("0/fer0032226.jpg\n")
    assert list(load_subset_lists("ferplus", only_pose)) == ["pose45"]


def test_match_subset(tmp_path):
    lists = _write_lists(tmp_path / "lists")
    fer_test = open_dataset("ferplus", _write_ferplus(tmp_path / "ferplus"), "test")
    fer = load_subset_lists("ferplus", lists)
    idx, missing = match_subset(fer_test, fer["pose30"])
    assert [fer_test.samples[i].key for i in idx] == ["fer0032226", "fer0032227"] and missing == 0
    idx, missing = match_subset(fer_test, fer["occlusion"])
    assert idx.dtype == np.int64 and idx.tolist() == [2] and missing == 1
    # The FERPlus lists name test images: against the train split every entry is missing.
    fer_train = open_dataset("ferplus", tmp_path / "ferplus", "train")
    assert match_subset(fer_train, fer["pose30"])[0].size == 0 and match_subset(fer_train, fer["pose30"])[1] == 2

    raf_test = open_dataset("rafdb", _write_rafdb(tmp_path / "raf"), "test")
    raf = load_subset_lists("rafdb", lists)
    idx, missing = match_subset(raf_test, raf["occlusion"])
    assert [raf_test.samples[i].key for i in idx] == ["test_0003", "test_0006"] and missing == 1
    assert match_subset(raf_test, raf["pose30"])[0].tolist() == [1, 2]

    aff_valid = open_dataset("affectnet", _write_affectnet(tmp_path / "affectnet"), "valid")
    idx, missing = match_subset(aff_valid, load_subset_lists("affectnet", lists)["pose30"])
    assert idx.tolist() == [0, 1] and missing == 0
    with pytest.raises(ValueError, match="cannot be matched"):
        match_subset(aff_valid, raf["pose30"])


# ---------------------------------------------------------------- the real data, when this machine has it


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "ferplus").is_dir(), reason="needs ../shared/data/ferplus")
def test_real_ferplus_counts():
    counts = {}
    for mode in ("majority", "probability"):
        for split in ("train", "valid"):
            data = open_dataset("ferplus", SHARED / "ferplus", split, label_mode=mode)
            counts[mode, split] = len(data)
            assert data.skipped.counts.get("missing file", 0) == 0
            assert data.skipped.counts.get("malformed row", 0) == 0
            assert (data.class_counts() > 0).all()
    print("FERPlus counts:", counts)
    # Microsoft's label.csv: 28,558 train and 3,579 valid images before the majority rule.
    assert 24_000 < counts["majority", "train"] < 26_000
    assert 3_150 < counts["majority", "valid"] < 3_230
    assert counts["probability", "valid"] > counts["majority", "valid"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "ran_lists").is_dir(), reason="needs ../shared/data/ran_lists")
def test_real_subset_lists():
    sizes = {
        ds: {
            name: (len(s), s.duplicates, s.skipped_lines)
            for name, s in load_subset_lists(ds, SHARED / "ran_lists").items()
        }
        for ds in ("ferplus", "affectnet", "rafdb")
    }
    print("subset list sizes (entries, duplicates, skipped lines):", sizes)
    assert sizes["ferplus"] == {"occlusion": (605, 0, 0), "pose30": (1170, 0, 0), "pose45": (633, 0, 0)}
    assert sizes["affectnet"] == {"occlusion": (683, 0, 0), "pose30": (1944, 5, 0), "pose45": (983, 2, 0)}
    assert sizes["rafdb"] == {"occlusion": (734, 1, 0), "pose30": (1247, 0, 0), "pose45": (558, 0, 0)}


def test_ferplus_label_file_with_bom_crlf_and_bad_bytes(tmp_path):
    """A label.csv as editors and other tools leave it: BOM, CRLF, a non-UTF-8 name, junk rows."""
    folder = tmp_path / "ferplus" / "FER2013Train"
    folder.mkdir(parents=True)
    names = [b"fer0000000.png", b"fer0000001.png", b"caf\xe9.png"]
    for n in names:
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(os.path.join(folder, os.fsdecode(n)))
    votes = b"10,0,0,0,0,0,0,0,0,0"
    rows = [
        b"\xef\xbb\xbf" + names[0] + b',"(0, 0, 48, 48)",' + votes,  # BOM on the first row
        names[1] + b"," + votes,  # no face box column
        names[2] + b',"(0, 0, 48, 48)",' + votes,  # a Latin-1 name
        b"fer0000003.png,1,2,3",  # too few columns
        b"fer0000004.png,a,b,c,d,e,f,g,h,i,j",  # non-numeric votes
        b"fer0000005.png,0,0,0,0,0,0,0,0,0,0",  # all-zero votes
        b"\xff\xfe garbage \x00 row",
    ]
    (folder / "label.csv").write_bytes(b"\r\n".join(rows) + b"\r\n")
    data = open_dataset("ferplus", tmp_path / "ferplus", "train")
    assert len(data.samples) == 3 and all(s.path.is_file() for s in data.samples)
    assert data.skipped.counts == {"malformed row": 3, "no majority label": 1}
