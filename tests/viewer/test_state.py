"""The viewer's Qt-free layer: state and events, occluders, the analysis of images and frames. No Qt import here."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, FakePredictor, face_image, make_face

from ran_viewer.analysis import Analyzer, detections_from_faces, model_display_name
from ran_viewer.camera import CameraError, OpenCVCamera, RateMeter, VideoFileSource, make_source
from ran_viewer.occlusion import (
    BrushStroke,
    EllipseOccluder,
    OcclusionEditor,
    PolygonOccluder,
    RectOccluder,
    apply_occluders,
    eye_bar,
    mouth_mask,
    occluder_mask,
)
from ran_viewer.state import (
    Event,
    ViewerState,
    expand_paths,
    match_face,
    region_values,
    weight_levels,
)

QT_FREE = ("state.py", "occlusion.py", "analysis.py", "camera.py")
PKG = Path(__file__).resolve().parents[2] / "ran_viewer"


@pytest.mark.parametrize("name", QT_FREE)
def test_qt_free_modules_import_no_qt(name: str) -> None:
    """The model layer must run where Qt is not installed (napari's rule): no Qt, pyqtgraph or Qt-side module."""
    tree = ast.parse((PKG / name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {m for m in imported if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy")}
    bad |= {m for m in imported if m.startswith(("ran_viewer.qt_", "ran_viewer.workers", "ran_viewer.app"))}
    assert not bad, f"{name} imports {bad}"


# --- events and state ----------------------------------------------------------------------------------------------


def test_event_connect_emit_block_disconnect() -> None:
    ev, got = Event("x"), []
    ev.connect(got.append)
    ev.connect(got.append)  # connecting twice calls once
    ev.emit(1)
    with ev.blocked():
        ev.emit(2)
    ev.disconnect(got.append)
    ev.emit(3)
    assert got == [1] and len(ev) == 0


def _counter(state: ViewerState) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in vars(state.events):
        getattr(state.events, name).connect(lambda *a, n=name: counts.__setitem__(n, counts.get(n, 0) + 1))
    return counts


def test_set_image_resets_faces_occluders_and_selection() -> None:
    state = ViewerState()
    img = face_image()
    state.set_image(img, "a.png")
    state.set_predictions([make_face((50, 40, 250, 220), [0.1] * 6)], [])
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=10, y2=10))
    state.select(0, 2)
    counts = _counter(state)
    state.set_image(face_image(seed=1), "b.png")
    assert state.faces == [] and state.occluders == [] and state.selected_face is None
    assert not state.analysed and counts == {"image": 1, "predictions": 1}
    with pytest.raises(ValueError):
        state.set_image(np.zeros((4, 4), np.uint8))


def test_predictions_select_first_face_and_keep_valid_selection() -> None:
    state = ViewerState()
    faces = [make_face((10, 10, 110, 110), [0.2] * 6), make_face((150, 10, 250, 110), [0.2] * 6)]
    state.set_predictions(faces, [])
    assert (state.selected_face, state.selected_region) == (0, None)
    state.select(1, 3)
    state.set_predictions(faces, [])
    assert (state.selected_face, state.selected_region) == (1, 3)
    state.set_predictions(faces[:1], [])
    assert (state.selected_face, state.selected_region) == (0, None)
    counts = _counter(state)
    state.select(0, 99)  # out of range region -> no region
    state.select(0, None)  # no change -> no event
    state.select(5, 1)  # out of range face -> nothing
    assert state.selected_face is None and counts == {"selection": 1}


def test_sources_navigation_clamps_and_emits() -> None:
    state = ViewerState()
    counts = _counter(state)
    state.set_sources(["a", "b", "c"], 1)
    assert state.current_source == "b"
    assert state.next_source() and state.current_source == "c"
    assert not state.next_source()  # at the end
    assert state.go_to(-5) and state.source_index == 0
    assert not state.previous_source()
    assert counts["sources"] == 3
    state.set_sources([])
    assert state.current_source is None and not state.next_source()


def test_expand_paths_folders_sorted_and_problems_reported(image_files: list[Path], tmp_path: Path) -> None:
    folder = image_files[0].parent
    (folder / "notes.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    images, problems = expand_paths([folder, tmp_path / "missing.png", empty, image_files[1]])
    names = [Path(p).name for p in images]
    assert names == ["broken.jpg", "img_0.png", "img_1.png", "img_2.png", "img_1.png"]
    assert len(problems) == 2 and "not found" in problems[0] and "no images" in problems[1]


def test_weight_modes_values_and_levels() -> None:
    face = make_face((0, 0, 100, 100), alphas=[0.1, 0.3, 0.2, 0.1, 0.2, 0.1], betas=[0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(region_values(face, "alpha"), [0.1, 0.3, 0.2, 0.1, 0.2, 0.1])
    share = region_values(face, "alpha*beta")
    assert share.sum() == pytest.approx(1.0) and share.argmax() == 0
    state = ViewerState()
    got = []
    state.events.weight_mode.connect(got.append)
    state.weight_mode = "beta"
    state.weight_mode = "beta"
    assert got == ["beta"]
    with pytest.raises(ValueError):
        state.weight_mode = "gamma"
    state.set_predictions([face], [])
    assert state.weight_levels() == pytest.approx((0.1, 0.5))


def test_weight_levels_never_stretch_nearly_equal_weights() -> None:
    assert weight_levels(np.array([0.1, 0.4, np.nan])) == pytest.approx((0.1, 0.4))
    lo, hi = weight_levels(np.full(6, 1 / 6) + np.arange(6) * 1e-5)
    assert hi - lo >= 0.25 / 6 - 1e-9 and lo < 1 / 6 < hi  # a uniform face stays mid-scale, not purple..yellow
    assert weight_levels(np.array([])) == (0.0, 1.0)


def test_disagreements_and_matching(fake_ran: FakePredictor, fake_baseline: FakePredictor) -> None:
    img = face_image()
    state = ViewerState()
    ran, base = fake_ran(img), fake_baseline(img)
    state.set_predictions(ran, base)
    assert ran[0].label != base[0].label and state.disagreements() == [0]
    state.set_predictions(ran, fake_ran(img))
    assert state.disagreements() == []
    moved = make_face((500, 500, 600, 600), [0.2] * 6)
    assert match_face(moved, ran) is None and match_face(ran[0], [moved, ran[0]]) is ran[0]


def test_face_near_prefers_containing_face() -> None:
    state = ViewerState()
    big, small = make_face((0, 0, 200, 200), [0.2] * 6), make_face((50, 50, 100, 100), [0.2] * 6)
    state.set_predictions([big, small], [])
    assert state.face_near(60, 60) is small
    assert state.face_near(150, 20) is big
    assert state.face_near(900, 900) is small or state.face_near(900, 900) is big


def test_set_frame_keeps_selected_track() -> None:
    state = ViewerState()
    a, b = make_face((0, 0, 50, 50), [0.2] * 6), make_face((100, 0, 150, 50), [0.2] * 6)
    a.track_id, b.track_id = 7, 8
    state.set_frame(face_image(), [a, b], [])
    state.select(1)
    state.set_frame(face_image(), [b, a], [])  # same faces, other order
    assert state.selected_face_result is b


def test_camera_settings_update_once() -> None:
    state = ViewerState()
    counts = _counter(state)
    state.set_camera(running=True, capture_fps=29.5)
    assert state.camera.running and counts == {"camera": 1}
    with pytest.raises(AttributeError):
        state.set_camera(bogus=1)


# --- occluders -----------------------------------------------------------------------------------------------------


def test_occluders_change_only_covered_pixels_and_leave_original() -> None:
    state = ViewerState()
    img = face_image()
    state.set_image(img.copy())
    counts = _counter(state)
    state.add_occluder(RectOccluder(x1=10, y1=20, x2=30, y2=50))
    shown = state.display_image
    assert (shown[20:50, 10:30] == 0).all()
    mask = np.ones(img.shape[:2], bool)
    mask[20:50, 10:30] = False
    assert (shown[mask] == img[mask]).all() and (state.image == img).all()
    state.replace_last_occluder(RectOccluder(fill="gray", x1=0, y1=0, x2=5, y2=5))
    assert (state.display_image[:5, :5] == 128).all() and (state.display_image[20:50, 10:30] == img[20:50, 10:30]).all()
    state.undo_occluder()
    state.undo_occluder()  # nothing left: no event
    state.clear_occluders()
    assert state.display_image is state.image and counts == {"occluders": 3}


@pytest.mark.parametrize(
    "occ",
    [
        RectOccluder(x1=5, y1=5, x2=40, y2=30),
        PolygonOccluder(points=((5, 5), (60, 10), (55, 40), (8, 35))),
        EllipseOccluder(cx=50, cy=40, rx=20, ry=10, angle=30),
        BrushStroke(points=((10, 10), (60, 60)), radius=5),
    ],
)
@pytest.mark.parametrize("fill", ["black", "gray", "noise", "blur"])
def test_every_shape_and_fill(occ, fill: str) -> None:
    from dataclasses import replace

    occ = replace(occ, fill=fill)
    img = face_image(120, 160)
    out = apply_occluders(img, [occ])
    mask = occluder_mask(occ, img.shape[:2])
    assert mask.sum() > 50
    assert (out[~mask] == img[~mask]).all()  # nothing outside the shape changes
    assert (out[mask] != img[mask]).any()
    np.testing.assert_array_equal(out, apply_occluders(img, [occ]))  # deterministic, even the noise
    assert occ.contains(*np.argwhere(mask)[len(np.argwhere(mask)) // 2][::-1])
    moved = occ.moved(10, 5)
    np.testing.assert_allclose(np.array(moved.bounds()) - np.array(occ.bounds()), [10, 5, 10, 5])


def test_occluder_outside_image_and_empty_list() -> None:
    img = face_image(50, 50)
    assert apply_occluders(img, []) is img
    np.testing.assert_array_equal(apply_occluders(img, [RectOccluder(x1=100, y1=100, x2=120, y2=120)]), img)
    with pytest.raises(ValueError):
        apply_occluders(img, [RectOccluder(fill="plaid", x1=0, y1=0, x2=5, y2=5)])


@pytest.mark.parametrize("n_points", [5, 68, 0])
def test_eye_bar_covers_eyes_and_mouth_mask_covers_mouth(n_points: int) -> None:
    box = (100.0, 100.0, 200.0, 220.0)
    if n_points == 5:
        lm = np.array([[130, 150], [170, 150], [150, 175], [135, 195], [165, 195]], float)
    elif n_points == 68:
        lm = np.zeros((68, 2))
        lm[36:42], lm[42:48], lm[30], lm[48:68] = (130, 150), (170, 150), (150, 175), (150, 195)
    else:
        lm = None
    bar, mask = eye_bar(box, lm), mouth_mask(box, lm)
    eyes_y = 150 if lm is not None else 100 + 0.4 * 120
    mouth_y = 195 if lm is not None else 100 + 0.78 * 120
    assert bar.contains(130, eyes_y) and bar.contains(170, eyes_y) and not bar.contains(150, mouth_y)
    assert mask.contains(150, mouth_y) and not mask.contains(130, eyes_y)


def test_editor_patch_brush_and_face_tools() -> None:
    state = ViewerState()
    state.set_image(face_image())
    editor = OcclusionEditor(state)
    assert not editor.press(5, 5)  # tool "none" edits nothing
    state.occlusion_tool = "patch"
    editor.press(10, 10)
    editor.move(40, 30)
    editor.release(50, 60)
    assert state.occluders[-1].bounds() == (10, 10, 50, 60)
    editor.press(5, 5)
    editor.release(6, 6)  # a click is not a patch
    assert len(state.occluders) == 1
    state.occlusion_tool = "brush"
    state.brush_radius = 6
    editor.press(0, 0)
    for x in range(1, 40):
        editor.move(x, x)
    editor.release(40, 40)
    stroke = state.occluders[-1]
    assert isinstance(stroke, BrushStroke) and stroke.radius == 6 and 5 < len(stroke.points) < 40
    state.occlusion_tool = "eyes"
    messages = []
    state.events.message.connect(lambda text, level: messages.append(text))
    assert not editor.press(100, 100) and messages  # no face yet: says so
    state.set_predictions([make_face((100, 60, 220, 200), [0.2] * 6)], [])
    editor.press(150, 100)
    before = state.occluders[-1].bounds()
    editor.move(160, 110)
    editor.release(160, 110)
    after = state.occluders[-1].bounds()
    np.testing.assert_allclose(np.subtract(after, before), [10, 10, 10, 10])
    with pytest.raises(ValueError):
        state.occlusion_tool = "laser"


# --- analysis ------------------------------------------------------------------------------------------------------


def test_analyzer_reads_same_faces_with_both_models(fake_ran: FakePredictor, fake_baseline: FakePredictor) -> None:
    img = face_image()
    an = Analyzer(fake_ran, fake_baseline)
    ran, base = an.analyze(img)
    assert len(ran) == len(base) == 1 and ran[0].box == base[0].box
    assert len(ran[0].regions) == 6 and len(base[0].regions) == 1
    occluded = apply_occluders(img, [eye_bar(ran[0].box, ran[0].landmarks)])
    ran2, base2 = an.reanalyze(occluded, ran)
    assert ran2[0].box == ran[0].box  # the boxes stay put
    assert not np.allclose(region_values(ran2[0], "alpha"), region_values(ran[0], "alpha"))
    assert Analyzer(None, fake_baseline).analyze(img)[1] and Analyzer().analyze(img) == ([], [])
    assert an.reanalyze(img, []) == ([], [])


def test_analyzer_frames_get_stable_track_ids() -> None:
    an = Analyzer(FakePredictor("ran", faces=2), FakePredictor("baseline"))
    ids = []
    for i in range(3):
        ran, base = an.analyze_frame(face_image(seed=i), i)
        ids.append([f.track_id for f in ran])
        assert [f.track_id for f in base] == ids[-1]
    assert ids[0] == ids[1] == ids[2] and sorted(ids[0]) == [0, 1]


def test_detections_round_trip(fake_ran: FakePredictor) -> None:
    faces = fake_ran(face_image())
    det = detections_from_faces(faces)[0]
    assert det.box == faces[0].box and det.landmarks.shape == (5, 2)
    assert model_display_name("/x/runs/ran/model.safetensors") == "ran" and model_display_name("ran-ferplus")


def test_analyzer_load_reports_missing_and_foreign_models(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pth"
    bad.write_bytes(b"\x80\x04pickled")
    an, info = Analyzer.load(str(tmp_path / "nope"), str(bad), detector="haar")
    assert not an.loaded and len(info.errors) == 2
    assert "not found" in info.errors[0] and "never loaded" in info.errors[1]


# --- camera sources ------------------------------------------------------------------------------------------------


def test_video_source_reads_frames_then_ends(fake_camera_video: Path) -> None:
    src = VideoFileSource(fake_camera_video, fps=0)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    src.close()
    assert len(frames) == 60 and src.ended and frames[0].shape == (120, 160, 3)
    assert frames[-1].mean() > frames[0].mean()
    with pytest.raises(CameraError):
        VideoFileSource(fake_camera_video.parent / "missing.avi").open()
    assert isinstance(make_source("0"), OpenCVCamera) and isinstance(
        make_source(str(fake_camera_video)), VideoFileSource
    )


def test_rate_meter() -> None:
    m = RateMeter(window=1.0)
    for i in range(11):
        m.tick(i * 0.1)
    assert m.rate == pytest.approx(10.0)


# --- process environment -------------------------------------------------------------------------------------------


def test_importing_ran_viewer_drops_opencvs_qt_plugin_paths() -> None:
    """opencv-python points Qt at its bundled Qt5 plugins on import, which aborts PySide6 under X11."""
    import subprocess
    import sys

    keys = "('QT_QPA_PLATFORM_PLUGIN_PATH', 'QT_QPA_FONTDIR')"
    code = f"import os, ran_viewer, cv2; print(*(os.environ.get(k) for k in {keys}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


def test_singletons_are_immortal_where_pyside_leaks_them() -> None:
    import sys

    from ran_viewer._env import _IMMORTAL, _pyside_needs_immortal_singletons

    if not _pyside_needs_immortal_singletons():
        pytest.skip("this Python/PySide6 pair does not leak references to None")
    assert sys.getrefcount(None) > _IMMORTAL // 2 and sys.getrefcount(True) > _IMMORTAL // 2


def test_camera_frames_with_a_real_predictor_detect_only_now_and_then(tiny_models: dict[str, Path]) -> None:
    """With ran_core's Predictor the camera path detects every N frames and follows faces in between."""
    from ran_core.imageio import read_image
    from ran_core.predictor import Predictor

    photo = read_image(SAMPLES / "grace_hopper.jpg")
    ran = Predictor(tiny_models["ran"], detector="haar")
    an = Analyzer(ran, Predictor(tiny_models["baseline"], detector=ran.detector), detect_every=5)
    ids = []
    for i in range(8):
        frame = np.ascontiguousarray(photo[10 + i : 410 + i, 40 + 2 * i : 440 + 2 * i])
        ran_faces, base_faces = an.analyze_frame(frame, i)
        assert len(ran_faces) == len(base_faces) >= 1 and len(ran_faces[0].regions) == 6
        ids.append(ran_faces[0].track_id)
        assert base_faces[0].track_id == ran_faces[0].track_id
    assert ids == [ids[0]] * 8 and an._stream.detections < 8
    an.reset_tracking()
    assert an._stream.detections == 0


def test_a_frame_analysed_with_occluders_keeps_the_clean_frame_as_the_image() -> None:
    """ViewerState.image is 'without occluders': a camera frame the worker read with occluders must not replace it,
    and the clean reading of an older image must not come back when the occluders are cleared."""
    state = ViewerState()
    old = make_face((10, 10, 60, 60), [0.2] * 6)
    state.set_image(face_image(seed=1))
    state.set_predictions([old], [])  # a still image's clean reading
    clean = face_image(seed=2)
    occ = RectOccluder(x1=0, y1=0, x2=320, y2=100)
    state.add_occluder(occ)
    burned = apply_occluders(clean, [occ])
    live = make_face((20, 20, 70, 70), [0.2] * 6)
    state.set_frame(clean, [live], [], analysed=burned)
    assert state.image is clean and np.array_equal(state.display_image, burned)
    assert state.clean_ran_faces == []  # unknown for this frame: nothing stale to restore
    state.clear_occluders()
    assert np.array_equal(state.display_image, clean)  # the clean frame, not the burned one
    # without occluders the frame's reading is its clean reading
    state.set_frame(clean, [live], [])
    assert state.clean_ran_faces == [live]


def test_camera_frames_use_the_fast_detector_and_onnx_runtime_when_left_to_auto(tiny_models) -> None:
    pytest.importorskip("onnxruntime")
    from ran_core.faces.detectors import detector_status

    if detector_status().get("blazeface") is not None:
        pytest.skip("BlazeFace is not installed")
    analyzer, info = Analyzer.load(str(tiny_models["ran"]), str(tiny_models["baseline"]), detector="auto")
    assert not info.errors and analyzer.camera_detector == "camera" and analyzer.camera_backend == "onnx"
    from ran_core.imageio import read_image

    frame = read_image(SAMPLES / "grace_hopper.jpg")
    ran_faces, base_faces = analyzer.analyze_frame(frame, 1)
    assert len(ran_faces) == 1 and len(base_faces) == 1 and ran_faces[0].track_id == 0
    stream = analyzer._stream
    assert stream.detector.name == "blazeface" and stream.predictor.backend == "onnx"
    assert analyzer.ran.backend == "torch"  # still images keep PyTorch and the stills' detector
    again, _ = analyzer.analyze_frame(frame, 2)
    assert analyzer._stream is stream and again[0].track_id == 0  # one stream for the whole session
