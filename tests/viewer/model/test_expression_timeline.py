"""The expression timeline without Qt: ring buffers per tracked face, rewinding, following the selection, smoothing."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_fixtures import face_image, make_face

from ran_core.timeline import smooth_series
from ran_viewer.model.timeline import ExpressionTimeline
from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.model.weights import region_values

NAMES = ["a", "b", "c"]


def sequence(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` readings of 3 classes at irregular times (a camera dropping frames)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.uniform(0.02, 0.2, n)), rng.dirichlet(np.ones(3), size=n)


def filled(times, probs, track: int = 1, **kw) -> ExpressionTimeline:
    tl = ExpressionTimeline(**kw)
    tl.follow(track)
    for t, p in zip(times, probs):
        tl.push(track, float(t), p, class_names=NAMES)
    return tl


def test_the_buffer_keeps_readings_in_time_order_and_drops_the_oldest() -> None:
    times, probs = sequence(30)
    tl = filled(times, probs, capacity=10)
    s = tl.series()
    assert len(s) == 10 and s.class_names == NAMES and s.weights.shape == (10, 0)
    np.testing.assert_allclose(s.times, times[-10:])
    np.testing.assert_allclose(s.probabilities, probs[-10:])
    short = filled(np.arange(0, 30.0, 1.0), np.tile(probs[:1], (30, 1)), history_s=5.0)
    assert short.series().times.tolist() == [24.0, 25.0, 26.0, 27.0, 28.0, 29.0]  # the last 5 s (and the edge)
    assert short.series(since=27.5).times.tolist() == [28.0, 29.0] and short.latest_time() == 29.0
    assert len(short.series(since=99.0)) == 0


def test_a_jump_back_in_time_drops_the_readings_after_it() -> None:
    """A video sought back (or looping) reads forward again from the new time."""
    tl = filled(np.arange(10.0), np.tile([[0.2, 0.3, 0.5]], (10, 1)))
    tl.push(1, 4.5, [1.0, 0.0, 0.0], class_names=NAMES)
    assert tl.series().times.tolist() == [0, 1, 2, 3, 4, 4.5]
    tl.push(1, 4.5, [0.0, 1.0, 0.0], class_names=NAMES)  # the same frame read again replaces it
    assert tl.series().times.tolist() == [0, 1, 2, 3, 4, 4.5] and tl.series().probabilities[-1, 1] == 1.0
    tl.push(1, 0.0, [0.0, 0.0, 1.0], class_names=NAMES)  # a looping video starts over
    assert tl.series().times.tolist() == [0.0]


def test_tracks_are_kept_apart_and_reset_one_by_one() -> None:
    tl = ExpressionTimeline()
    changed: list = []
    tl.events.changed.connect(lambda: changed.append(1))
    tl.follow(1)
    n = len(changed)
    for t in range(5):
        tl.push(1, float(t), [0.1, 0.2, 0.7], class_names=NAMES)
        tl.push(2, float(t), [0.7, 0.2, 0.1], class_names=NAMES)
    assert sorted(tl.tracks) == [1, 2] and len(changed) == n + 5  # only the followed face's readings redraw
    assert tl.series(2).probabilities[0, 0] == pytest.approx(0.7)
    tl.reset(1)
    assert tl.tracks == [2] and len(tl.samples(2)) == 5
    tl.push(1, 9.0, [0.1, 0.2, 0.7], class_names=NAMES)
    tl.follow(2)  # another face: the timeline starts over
    assert tl.followed == 2 and tl.tracks == [] and len(tl.series()) == 0


def test_smoothing_is_ran_cores_ema_and_follows_the_window() -> None:
    times, probs = sequence(60, seed=3)
    tl = filled(times, probs)
    assert not tl.smoothing
    np.testing.assert_allclose(tl.series().probabilities, probs)  # off by default: the readings as they are
    tl.set_smoothing(True, 0.5)
    s = tl.series()
    np.testing.assert_allclose(s.probabilities, smooth_series(times, probs, 0.5))
    np.testing.assert_allclose(s.raw_probabilities, probs)
    assert np.abs(np.diff(s.probabilities, axis=0)).mean() < np.abs(np.diff(probs, axis=0)).mean()  # steadier
    # readings arriving with smoothing on are smoothed as they come, the same as all at once
    more_t, more_p = times[-1] + np.cumsum(np.full(10, 0.1)), sequence(10, seed=4)[1]
    for t, p in zip(more_t, more_p):
        tl.push(1, float(t), p, class_names=NAMES)
    all_t, all_p = np.concatenate([times, more_t]), np.concatenate([probs, more_p])
    np.testing.assert_allclose(tl.series().probabilities, smooth_series(all_t, all_p, 0.5))
    tl.set_smoothing(window_s=2.0)
    np.testing.assert_allclose(tl.series().probabilities, smooth_series(all_t, all_p, 2.0))
    tl.push(1, float(times[20]), probs[20], class_names=NAMES)  # rewind: smoothed again from what is left
    np.testing.assert_allclose(tl.series().probabilities, smooth_series(all_t[:21], all_p[:21], 2.0))
    tl.set_smoothing(False)
    np.testing.assert_allclose(tl.series().probabilities, all_p[:21])
    with pytest.raises(ValueError):
        tl.set_smoothing(window_s=0)


def test_it_follows_the_selected_face_of_camera_frames() -> None:
    state = ViewerState()
    tl = ExpressionTimeline(state)
    alphas = [0.05, 0.30, 0.10, 0.25, 0.15, 0.15]

    def frame(t: float, tracks: list[int]) -> None:
        faces = []
        for k, tid in enumerate(tracks):
            f = make_face((20 + 150 * k, 20, 140 + 150 * k, 160), alphas, image_shape=(240, 320))
            f.track_id = tid
            faces.append(f)
        state.set_frame(face_image(), faces, [], name="camera 0", time_s=t)

    state.set_image(face_image(), "still")  # a still image: nothing to plot
    state.set_predictions([make_face((20, 20, 140, 160), alphas)], [])
    assert tl.tracks == []
    state.set_camera(running=True)
    for k in range(4):
        frame(k / 30, [7, 8])
    assert tl.followed == 7 and sorted(tl.tracks) == [7, 8]  # the first face is selected at first
    s = tl.series(mode="alpha")
    assert s.times.tolist() == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30]) and s.region_names[1] == "top_left"
    np.testing.assert_allclose(s.weights[0], alphas)
    np.testing.assert_allclose(tl.series().weights[0], region_values(state.ran_faces[0], "alpha*beta"))
    state.select(1)  # another face: starts over with it
    assert tl.followed == 8 and len(tl.series()) == 0
    frame(4 / 30, [7, 8])
    assert len(tl.series()) == 1 and tl.series().track == 8
    state.set_camera(running=False)
    state.set_camera(running=True)  # the camera starts again: so does the timeline
    assert tl.tracks == [] and tl.followed is None
