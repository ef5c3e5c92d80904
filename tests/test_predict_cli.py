"""``ran-core predict`` end to end: images, folders, bad files, drawings, videos with tracking and a CSV timeline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib import colormaps

from ran_core import FaceResult, RegionResult, create_model, save_model
from ran_core.cli import main
from ran_core.faces.draw import draw_faces, region_shares

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
HOPPER = SAMPLES / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("ran_compact"), tmp_path_factory.mktemp("m") / "ran")


def test_good_and_bad_inputs(model_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(HOPPER, folder / "hopper.jpg")
    shutil.copy(SAMPLES / "astronaut.jpg", folder / "astronaut.jpg")
    (folder / "readme.txt").write_text("not an image, and not picked up from a folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "broken.png").write_text("hello")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 128, np.uint8))
    out = tmp_path / "out" / "result.json"
    draw = tmp_path / "drawn"
    inputs = [str(folder), str(tmp_path / "empty.jpg"), str(blank), str(tmp_path / "broken.png")]
    rc = main(
        ["predict", *inputs, "--model", str(model_dir), "--detector", "mtcnn", "--json", str(out)]
        + [
            "--draw",
            str(draw),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    report = json.loads(out.read_text())
    by_name = {Path(e["path"]).name: e for e in report["inputs"]}
    assert set(by_name) == {"hopper.jpg", "astronaut.jpg", "empty.jpg", "blank.png", "broken.png"}
    assert len(by_name["hopper.jpg"]["faces"]) == 1 and len(by_name["astronaut.jpg"]["faces"]) == 1
    face = by_name["hopper.jpg"]["faces"][0]
    assert face["label"] in report["class_names"] and len(face["regions"]) == 6
    assert by_name["blank.png"]["faces"] == []
    assert "empty" in by_name["empty.jpg"]["error"] and "not an image" in by_name["broken.png"]["error"]
    assert "empty.jpg" in captured.err and "broken.png" in captured.err
    assert "hopper.jpg: 1 face" in captured.out and "blank.png: no face" in captured.out
    drawn = cv2.imread(str(draw / "hopper.jpg"))
    assert drawn.shape[0] == 600 and drawn.shape[1] > 512  # the colour bar panel is added on the right
    assert (draw / "blank.jpg").is_file()


def test_all_good_exits_zero_even_without_faces(model_dir, tmp_path) -> None:
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 30, np.uint8))
    assert main(["predict", str(blank), str(HOPPER), "--model", str(model_dir), "--detector", "haar"]) == 0


def test_unusable_detector_or_model_is_a_clear_error(model_dir, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["predict", str(HOPPER), "--model", str(model_dir), "--detector", "fan"]) == 2
    assert "face-alignment weights not found" in capsys.readouterr().err
    assert main(["predict", str(HOPPER), "--model", str(tmp_path / "nope")]) == 2
    assert "model not found" in capsys.readouterr().err


def test_drawing_colours_regions_by_attention() -> None:
    rgb = np.full((400, 400, 3), 255, np.uint8)
    regions = [
        RegionResult("face", (50, 50, 350, 350), 0.1, 0.1),
        RegionResult("top_left", (60, 60, 200, 200), 0.6, 0.5),  # the largest share
        RegionResult("center_down", (100, 200, 300, 340), 0.3, 0.4),
    ]
    face = FaceResult((80, 80, 320, 320), 0.9, None, np.array([0.2, 0.8]), ["a", "b"], regions)
    shares = region_shares(face)
    np.testing.assert_allclose(shares, np.array([0.01, 0.3, 0.12]) / 0.43)
    img = draw_faces(rgb, [face])
    assert img.shape[0] == 400 and img.shape[1] > 400
    viridis = colormaps["viridis"]
    top = np.array(viridis(1.0)[:3]) * 255
    mid = np.array(viridis(shares[2] / shares[1])[:3]) * 255
    low = np.array(viridis(shares[0] / shares[1])[:3]) * 255
    np.testing.assert_allclose(img[130, 200], top, atol=2)  # right edge of top_left
    np.testing.assert_allclose(img[270, 300], mid, atol=2)  # right edge of center_down
    np.testing.assert_allclose(img[300, 350], low, atol=2)  # right edge of the face region
    np.testing.assert_array_equal(img[150, 320], [255, 255, 255])  # the detector box is white
    bar = img[:, 400:]
    assert np.abs(bar.astype(int) - top.astype(int)).sum(-1).min() < 10  # the colour bar holds the top colour
    plain = draw_faces(rgb, [FaceResult((80, 80, 320, 320), 0.9, None, np.array([0.2, 0.8]), ["a", "b"])])
    assert plain.shape == rgb.shape  # no attention (baseline): no colour bar


def test_region_numbers_never_cover_each_other() -> None:
    from ran_core.faces.draw import _place_label

    taken: list[tuple[int, int, int, int]] = []
    nested = [(50, 50, 350, 350), (60, 60, 200, 200), (60, 60, 190, 190), (62, 62, 195, 198), (100, 200, 300, 340)]
    spots = [_place_label(box, (30, 14), 2, taken) for box in nested]
    assert all(spot is not None for spot in spots) and len(taken) == len(nested)
    for a, ra in enumerate(taken):
        for rb in taken[a + 1 :]:
            assert not (ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3])
    crowded = [(0, 20, 100, 120)] * 9  # 8 corners (4 in, 4 out): the ninth number is left out, not stacked
    taken = []
    assert [_place_label(b, (30, 14), 1, taken) is None for b in crowded].count(True) == 1


def _make_video(path: Path, frames: int = 12, fps: float = 10.0) -> list[tuple[int, int]]:
    face = cv2.resize(cv2.imread(str(HOPPER)), (170, 200))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (400, 260))
    assert writer.isOpened()
    offsets = []
    for i in range(frames):
        frame = np.full((260, 400, 3), 70, np.uint8)
        x, y = 20 + 12 * i, 30
        frame[y : y + 200, x : x + 170] = face
        writer.write(frame)
        offsets.append((x, y))
    writer.release()
    return offsets


def test_video_timeline_tracking_and_annotated_output(model_dir, tmp_path, capsys) -> None:
    video = tmp_path / "clip.mp4"
    _make_video(video, frames=12, fps=10.0)
    out_json = tmp_path / "res" / "r.json"
    annotated = tmp_path / "annotated.mp4"
    args = ["predict", str(video), "--model", str(model_dir), "--detector", "mtcnn", "--every", "3"]
    rc = main(args + ["--json", str(out_json), "--video-out", str(annotated)])
    assert rc == 0
    csv_path = tmp_path / "res" / "clip.csv"  # default: beside the JSON
    rows = list(csv.DictReader(csv_path.open()))
    assert [int(r["frame"]) for r in rows] == [0, 3, 6, 9]
    assert [float(r["time_s"]) for r in rows] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert {r["face"] for r in rows} == {"0"}  # one face, one stable id while it moves
    x1 = [float(r["x1"]) for r in rows]
    assert all(b > a + 20 for a, b in zip(x1, x1[1:]))  # the box follows the face (12 px per frame)
    probs = [[float(r[k]) for k in r if k.startswith("p_")] for r in rows]
    assert len(probs[0]) == 8 and all(abs(sum(p) - 1) < 1e-3 for p in probs)
    assert sum(k.startswith("alpha_") for k in rows[0]) == 6
    report = json.loads(out_json.read_text())
    entry = report["inputs"][0]
    assert entry["video"]["frames"] == 12 and entry["video"]["processed"] == 4
    assert entry["tracks"]["0"]["frames"] == 4
    cap = cv2.VideoCapture(str(annotated))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    assert "clip.mp4: 4 of 12 frames" in capsys.readouterr().out
    assert main(["predict", str(video), "--model", str(model_dir), "--detector", "mtcnn", "--every", "6"]) == 0
    assert len(list(csv.DictReader((tmp_path / "clip.csv").open()))) == 2  # default without --json: <video>.csv
    explicit = tmp_path / "timeline.csv"
    assert (
        main(
            [
                "predict",
                str(video),
                "--model",
                str(model_dir),
                "--every",
                "12",
                "--detector",
                "mtcnn",
                "--csv",
                str(explicit),
            ]
        )
        == 0
    )
    assert len(list(csv.DictReader(explicit.open()))) == 1


def test_unreadable_video_is_reported(model_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    good = tmp_path / "good.jpg"
    shutil.copy(HOPPER, good)
    out = tmp_path / "r.json"
    rc = main(["predict", str(bad), str(good), "--model", str(model_dir), "--detector", "haar", "--json", str(out)])
    assert rc == 1
    entries = json.loads(out.read_text())["inputs"]
    assert "error" in entries[0] and len(entries[1]["faces"]) == 1
    assert "bad.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_tiny_and_thin_images_are_empty_with_a_note_and_lose_nothing(model_dir, tmp_path, detector) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(HOPPER, folder / "a_hopper.jpg")
    rng = np.random.default_rng(0)
    sizes = {"b_18x30.png": (30, 18), "c_1x1.png": (1, 1), "d_8x8.png": (8, 8), "e_wide.png": (80, 6000)}
    sizes["f_tall.png"] = (6000, 80)
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    out = tmp_path / "r.json"
    rc = main(["predict", str(folder), "--model", str(model_dir), "--detector", detector, "--json", str(out)])
    assert rc == 0  # every input could be read
    by_name = {Path(e["path"]).name: e for e in json.loads(out.read_text())["inputs"]}
    assert set(by_name) == {"a_hopper.jpg", *sizes}
    if detector == "mtcnn":
        assert len(by_name["a_hopper.jpg"]["faces"]) == 1
    for name in sizes:
        assert by_name[name]["faces"] == [] and "error" not in by_name[name]
        assert "too small or too thin" in by_name[name]["note"], name


def test_an_analysis_failure_is_that_inputs_error_only(model_dir, tmp_path, monkeypatch, capsys) -> None:
    from ran_core.predictor import Predictor

    real = Predictor.__call__

    def flaky(self, image):
        if np.asarray(image).shape[0] == 99:
            raise RuntimeError("simulated failure inside the model")
        return real(self, image)

    monkeypatch.setattr(Predictor, "__call__", flaky)
    cv2.imwrite(str(tmp_path / "odd.png"), np.zeros((99, 99, 3), np.uint8))
    out = tmp_path / "r.json"
    rc = main(["predict", str(HOPPER), str(tmp_path / "odd.png"), "--model", str(model_dir), "--json", str(out)])
    assert rc == 1
    entries = json.loads(out.read_text())["inputs"]
    assert len(entries[0]["faces"]) == 1
    assert "could not be analysed" in entries[1]["error"] and "odd.png" in capsys.readouterr().err


def test_faces_whole_for_already_cropped_faces(model_dir, tmp_path, capsys) -> None:
    """FERPlus-like 48 px grey crops, and the same upscaled: `--faces whole` gives one face each."""
    from ran_core.faces import create_detector

    rgb = cv2.cvtColor(cv2.imread(str(HOPPER)), cv2.COLOR_BGR2RGB)
    (face,) = create_detector("mtcnn").detect(rgb)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    crop = cv2.cvtColor(rgb[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY)
    folder = tmp_path / "crops"
    folder.mkdir()
    cv2.imwrite(str(folder / "small.png"), cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(folder / "big.png"), cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC))
    cv2.imwrite(str(folder / "flat.png"), np.full((48, 48), 128, np.uint8))  # no face at all: still one "face"
    out = tmp_path / "r.json"
    assert main(["predict", str(folder), "--model", str(model_dir), "--json", str(out)]) == 0
    detect_mode = {Path(e["path"]).name: e for e in json.loads(out.read_text())["inputs"]}
    assert detect_mode["flat.png"]["faces"] == [] and "--faces whole" in detect_mode["flat.png"]["note"]
    assert main(["predict", str(folder), "--model", str(model_dir), "--json", str(out), "--faces", "whole"]) == 0
    whole = {Path(e["path"]).name: e for e in json.loads(out.read_text())["inputs"]}
    for name in ("small.png", "big.png", "flat.png"):
        assert len(whole[name]["faces"]) == 1, name
    assert whole["small.png"]["faces"][0]["landmarks"] is not None  # found in the upscaled, padded crop
    assert whole["flat.png"]["faces"][0]["landmarks"] is None  # framed as the whole image
    small, big = (np.array(list(whole[n]["faces"][0]["probabilities"].values())) for n in ("small.png", "big.png"))
    assert np.abs(small - big).max() < 0.2  # the same face at two resolutions gets much the same answer
