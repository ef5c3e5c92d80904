"""Expression over time: time-based smoothing, and the timeline plot of a processed video."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from test_predict_cli import _make_video

from ran_core.cli import main
from ran_core.engine.plots import class_color
from ran_core.timeline import ExpressionSmoother, smooth_series


def test_smoothing_follows_time_not_frames() -> None:
    before, after = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for fps in (10, 30):
        t = np.arange(0, 3, 1 / fps)
        values = np.where((t >= 1.0)[:, None], after, before)
        out = smooth_series(t, values, window_s=0.5)
        np.testing.assert_allclose(out[t < 1.0 - 1e-9], np.tile(before, (int((t < 1 - 1e-9).sum()), 1)))
        first = int(np.argmax(t >= 1.0))  # the first reading after the step counts from the reading before it
        at = int(np.argmin(np.abs(t - 1.5)))
        assert out[at, 1] == pytest.approx(1 - np.exp(-(t[at] - t[first - 1]) / 0.5), abs=1e-9)
        assert 0.6 < out[at, 1] < 0.75  # about 1 - 1/e one window after the step, at either frame rate
        assert np.allclose(out.sum(1), 1)  # an average of distributions is a distribution
    s = ExpressionSmoother(0.5)
    s.update(1, 0.0, before)
    assert s.update(2, 0.1, after).tolist() == after.tolist()  # each track on its own
    assert ExpressionSmoother(0).update(1, 0.0, after).tolist() == after.tolist()
    with pytest.raises(ValueError):
        ExpressionSmoother(-1)


def test_video_plot_and_smoothed_csv(tmp_path) -> None:
    import torch

    from ran_core import create_model, save_model

    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    video = tmp_path / "clip.mp4"
    _make_video(video, frames=10, fps=10.0)
    plot, csv_path = tmp_path / "timeline.png", tmp_path / "clip.csv"
    argv = ["predict", str(video), "--model", str(tmp_path / "m"), "--detector", "mtcnn", "--csv", str(csv_path)]
    argv += ["--plot", str(plot), "--smooth", "0.3", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 10 and rows[0]["label_smooth"]
    raw = np.array([[float(r[f"p_{c}"]) for c in ("neutral", "happiness")] for r in rows])
    smooth = np.array([[float(r[f"p_{c}_smooth"]) for c in ("neutral", "happiness")] for r in rows])
    np.testing.assert_allclose(smooth[0], raw[0], atol=1e-5)  # the first reading is its own average
    assert json.loads((tmp_path / "r.json").read_text())["inputs"][0]["plot"] == str(plot)
    pixels = np.asarray(Image.open(plot).convert("RGB")).reshape(-1, 3).astype(int)
    for c in range(8):  # one trace per class, in its colour
        rgb = np.array([int(class_color(c)[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(1) < 30).sum() > 40, c
    assert main([*argv[:-2], "--smooth", "-1"]) == 2
