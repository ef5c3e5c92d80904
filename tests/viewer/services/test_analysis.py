"""The analysis service: both models on the same faces, camera frames, model loading (Qt-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from viewer_fixtures import SAMPLES, FakePredictor, face_image

from ran_viewer.model.analysis import model_display_name
from ran_viewer.model.occluders import (
    apply_occluders,
    eye_bar,
)
from ran_viewer.model.weights import region_values
from ran_viewer.services.analysis import Analyzer, detections_from_faces


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
    thread = an._stream._worker.thread  # detection runs on the stream's own thread
    assert thread.is_alive()
    an.close_stream()  # the camera stopped: the thread ends, a new stream is made on the next frame
    assert an._stream is None and not thread.is_alive()
    again, _ = an.analyze_frame(np.ascontiguousarray(photo[10:410, 40:440]), 9)
    assert len(again) == 1 and an._stream is not None
    an.close_stream()


def test_camera_tta_changes_camera_frames_only(tiny_models: dict[str, Path]) -> None:
    """A cheaper TTA for the camera: its stream and the baseline on its frames use it, stills keep the saved one."""
    from ran_core.imageio import read_image
    from ran_core.predictor import Predictor

    ran = Predictor(tiny_models["ran"], detector="haar")
    an = Analyzer(ran, Predictor(tiny_models["baseline"], detector=ran.detector))
    frame = np.ascontiguousarray(read_image(SAMPLES / "grace_hopper.jpg")[10:410, 40:440])
    an.analyze_frame(frame, 0)
    assert an._stream.predictor.tta is None  # the model's own
    thread = an._stream._worker.thread
    an.set_camera_tta("flip")
    assert an._stream is None and not thread.is_alive()  # the stream ended; the next frame makes a new one
    ran_faces, base_faces = an.analyze_frame(frame, 1)
    assert an._stream.predictor.tta == "flip" and an._camera_baseline.tta == "flip"
    assert an._stream.predictor.model is ran.model  # nothing loaded again
    assert len(ran_faces) == len(base_faces) == 1
    dets = detections_from_faces(ran_faces)
    for pred, faces in ((ran, ran_faces), (an.baseline, base_faces)):
        flipped = pred.with_tta("flip").predict_faces(frame, dets)[0].probabilities
        plain = pred.predict_faces(frame, dets)[0].probabilities
        np.testing.assert_allclose(faces[0].probabilities, flipped, atol=1e-5)  # the camera read with flip TTA
        assert not np.allclose(flipped, plain, atol=1e-5)
    assert ran.tta is None and an.baseline.tta is None  # stills keep the saved TTA
    an.set_camera_tta(None)
    assert an._stream is None and an._camera_baseline is None
    with pytest.raises(ValueError, match="camera TTA"):
        an.set_camera_tta("rotate")
    an.close_stream()


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
