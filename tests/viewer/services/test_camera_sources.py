"""Frame sources (video files, cameras) and the rate meter (Qt-free)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ran_viewer.services.camera import CameraError, OpenCVCamera, RateMeter, VideoFileSource, make_source


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
