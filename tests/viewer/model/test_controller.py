"""The viewer's application logic without Qt: requests, stale results, occlusion re-runs, the camera session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from viewer_fixtures import analysis as result
from viewer_fixtures import face_image, make_face, messages, tracked
from viewer_fixtures import make_controller as make

from ran_viewer.model.analysis import ModelsInfo
from ran_viewer.model.occluders import RectOccluder


def test_opening_a_folder_analyses_the_first_image_and_navigates(image_files: list[Path]) -> None:
    c, state, engine, _ = make()
    names = sorted(p.name for p in image_files)  # the corrupt one too: opening it says what is wrong
    assert c.open_paths([image_files[0].parent]) == len(image_files)
    assert engine.calls[0][:2] == ("image", names[0])
    c.next_image()
    assert engine.calls[-1][1] == names[1] and c.image_seq == 1
    said = messages(state)
    c.previous_image()
    c.previous_image()
    assert said[-1] == ("First image.", "info")


def test_nothing_to_open_and_missing_paths_are_messages(tmp_path: Path) -> None:
    c, state, engine, _ = make()
    said = messages(state)
    assert c.open_paths([tmp_path / "nope.png"]) == 0
    assert "file not found" in said[-1][0] and said[-1][1] == "warning" and engine.calls == []


def test_only_the_wanted_image_and_its_newest_result_are_shown() -> None:
    c, state, engine, _ = make()
    c.open_array(face_image(seed=1), "first")
    c.open_array(face_image(seed=2), "second")  # the user moved on: seq 1 is wanted
    old_face, new_face = make_face((10, 10, 60, 60), [0.2] * 6), make_face((20, 20, 80, 80), [0.2] * 6)
    c.on_image_loaded(0, face_image(seed=1), "first", None)
    assert state.image is None  # the first image never shows
    c.on_image_loaded(1, face_image(seed=2), "second", None)
    assert state.image_name == "second"
    assert not c.on_result(result("image", 0, 0, [old_face]))
    zoomed: list = []
    c.events.image_result.connect(zoomed.append)
    assert c.on_result(result("image", 1, 1, [new_face]))
    assert state.ran_faces == [new_face] and len(zoomed) == 1 and c.applied_seq == 1
    assert not c.on_result(result("occlusion", 1, 1, [old_face]))  # not newer than what is shown
    assert state.ran_faces == [new_face]


def test_an_error_clears_the_current_image_but_not_another() -> None:
    c, state, engine, _ = make()
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    said = messages(state)
    c.on_error(7, "Could not analyse b: broken")
    assert state.image is not None and said[-1] == ("Could not analyse b: broken", "error")
    c.on_error(0, "Could not analyse a: broken")
    assert state.image is None


def test_occluders_rerun_the_same_faces_and_clearing_restores_without_a_run() -> None:
    c, state, engine, _ = make()
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    clean = make_face((10, 10, 60, 60), [0.2] * 6)
    c.on_result(result("image", 0, 0, [clean]))
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=40, y2=40))
    assert engine.calls[-1] == ("occlusion", 1, [clean.box], 0)
    covered = make_face((10, 10, 60, 60), [0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert c.on_result(result("occlusion", 1, 0, [covered], occluded=True))
    assert state.ran_faces == [covered] and state.clean_ran_faces == [clean]
    n = len(engine.calls)
    state.clear_occluders()
    assert len(engine.calls) == n and state.ran_faces == [clean]  # known clean reading, no model run
    # a late result of the covered image must not come back over the clean one
    assert not c.on_result(result("occlusion", 2, 0, [covered], occluded=True))
    assert state.ran_faces == [clean]


def test_occluders_on_an_image_without_faces_say_so() -> None:
    c, state, engine, _ = make()
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    c.on_result(result("image", 0, 0, []))
    said = messages(state)
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=40, y2=40))
    assert "No face to re-read" in said[-1][0] and engine.kinds().count("occlusion") == 0


def test_camera_session_frames_pause_and_stop() -> None:
    c, state, engine, cams = make()
    frame_face = tracked(make_face((10, 10, 60, 60), [0.2] * 6), 3)
    assert not c.on_result(result("frame", 0, -1, [frame_face]))  # no camera: a late frame is dropped
    c.start_camera(0)
    assert state.camera.running and state.camera.name == "camera 0" and cams[-1].spec == 0
    assert engine.kinds()[-2:] == ["reset", "frame_occluders"]
    assert c.on_result(result("frame", 1, -1, [frame_face]))
    assert state.image_name == "camera 0" and state.ran_faces == [frame_face]
    assert c.toggle_pause() and cams[-1].paused is True and state.camera.paused
    assert not c.toggle_pause() and cams[-1].paused is False
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=40, y2=40))
    assert engine.calls[-1] == ("frame_occluders", 1)  # burned into every frame, no still-image re-run
    c.on_inference_stats(28.5, 4)
    assert state.camera.analysed_fps == 28.5 and state.camera.dropped == 4
    c.stop_camera()
    assert cams[-1].stopped == 1 and not state.camera.running and c.camera is None
    assert engine.calls[-1] == ("end_frames",)  # the stream's detection thread is closed
    assert not c.on_result(result("frame", 2, -1, [frame_face]))


def test_a_new_camera_replaces_the_old_one_and_opening_an_image_stops_it(image_files: list[Path]) -> None:
    c, state, engine, cams = make()
    c.start_camera(0)
    c.start_camera("clip.mp4")
    assert cams[0].stopped == 1 and state.camera.name == "clip.mp4"
    c.open_paths([image_files[0]])
    assert cams[1].stopped == 1 and not state.camera.running


def test_camera_error_and_end_stop_the_session_and_report() -> None:
    c, state, engine, cams = make()
    problems: list = []
    c.events.problem.connect(lambda title, text: problems.append((title, text)))
    c.start_camera(5)
    c.on_camera_error("Camera 5 could not be opened.")
    assert cams[0].stopped == 1 and not state.camera.running
    assert problems and problems[0][0] == "Camera" and "keeps running" in problems[0][1]
    c.start_camera("clip.mp4")
    said = messages(state)
    c.on_camera_ended()
    assert said[-1][0] == "The video ended." and not state.camera.running


def test_no_camera_is_a_message() -> None:
    c, state, engine, _ = make(camera=False)
    said = messages(state)
    c.start_camera(0)
    assert not state.camera.running and "no camera" in said[-1][0]


def test_models_loaded_name_the_models_report_errors_and_read_the_image_again() -> None:
    c, state, engine, _ = make()
    pending: list = []
    c.events.models_pending.connect(pending.append)
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    c.load_models("ran-ferplus", "missing-model")
    assert (
        c.models_pending and pending == [True] and engine.calls[-1] == ("load", "ran-ferplus", "missing-model", "auto")
    )
    problems: list = []
    c.events.problem.connect(lambda *a: problems.append(a))
    c.on_models_loaded(ModelsInfo("ran-ferplus", "", ["baseline: missing-model not found"], "mtcnn"))
    assert not c.models_pending and pending == [True, False]
    assert state.ran_model_name == "ran-ferplus" and c.detector_name == "mtcnn" and problems
    assert engine.calls[-1][:2] == ("image", "a") and c.image_seq == 1  # read again with the new models


def test_whole_face_mode_rereads_the_shown_image_but_not_during_the_camera() -> None:
    c, state, engine, _ = make()
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    c.set_whole_faces(True)
    assert engine.calls[-2:] == [("face_mode", "whole"), ("image", "a", None)]
    c.start_camera(0)
    n = len(engine.calls)
    c.set_whole_faces(False)
    assert engine.calls[n:] == [("face_mode", "detect")]


def test_camera_tta_goes_to_the_engine_and_the_state() -> None:
    c, state, engine, _ = make()
    seen: list[str | None] = []
    state.events.camera.connect(lambda *_: seen.append(state.camera.tta))
    c.set_camera_tta("flip")
    assert engine.calls[-1] == ("camera_tta", "flip") and state.camera.tta == "flip" and seen == ["flip"]
    c.set_camera_tta(None)
    assert engine.calls[-1] == ("camera_tta", None) and seen == ["flip", None]
    with pytest.raises(ValueError, match="camera TTA"):
        c.set_camera_tta("shift")  # not offered by the menu
    assert state.camera.tta is None


def test_camera_frames_read_with_occluders_get_a_clean_reading_when_cleared() -> None:
    """After the camera stops on a frame read with occluders, clearing them reads the same faces on the clean frame."""
    c, state, engine, _ = make()
    c.start_camera(0)
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=40, y2=40))
    clean, burned = face_image(seed=1), face_image(seed=2)
    face = tracked(make_face((10, 10, 60, 60), [0.2] * 6), 0)
    c.on_result(result("frame", 0, -1, [face], image=burned, clean_image=clean, occluded=True))
    c.stop_camera()
    state.clear_occluders()
    kind, n_occluders, boxes, _ = engine.calls[-1]
    assert (kind, n_occluders, boxes) == ("occlusion", 0, [face.box])
    assert np.array_equal(state.display_image, clean)


def test_seeking_asks_a_video_for_the_frame_at_a_time_and_a_live_camera_says_it_cannot() -> None:
    c, state, engine, cams = make()
    assert not c.seek_camera(1.0)  # no camera
    c.start_camera("clip.mp4")
    c.on_camera_source(30.0, 60, True)
    assert state.camera.source_fps == 30.0 and state.camera.seekable
    assert c.seek_camera(1.0) and c.seek_camera(99.0) and c.seek_camera(-3)
    assert cams[-1].seeks == [30, 59, 0]  # the frame at that time, within the file
    said = messages(state)
    c.start_camera(0)
    c.on_camera_source(0.0, 0, False)
    assert not c.seek_camera(1.0) and cams[-1].seeks == [] and "cannot go back in time" in said[-1][0]
    assert not state.camera.seekable and state.camera.source_fps == 0.0


def test_camera_frames_carry_their_time_into_the_state() -> None:
    c, state, engine, _ = make()
    c.start_camera("clip.mp4")
    face = tracked(make_face((10, 10, 60, 60), [0.2] * 6), 0)
    assert c.on_result(result("frame", 0, -1, [face], frame_time=1.5))
    assert state.frame_time == 1.5
    state.set_image(face_image(), "still")
    assert state.frame_time is None
