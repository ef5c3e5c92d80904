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


def test_video_source_knows_frame_times_and_seeks_from_another_thread(fake_camera_video: Path) -> None:
    import threading

    src = VideoFileSource(fake_camera_video, fps=0)
    assert src.seekable and src.frame_time is None
    src.open()
    try:
        assert (src.fps, src.frame_count) == (30.0, 60)
        for _ in range(5):
            src.read()
        assert src.position == 4 and src.frame_time == pytest.approx(4 / 30)
        asker = threading.Thread(target=src.request_seek, args=(45,))  # the GUI asks, the camera thread reads
        asker.start()
        asker.join()
        assert src.seek_pending
        frame = src.read()
        assert not src.seek_pending and src.position == 45 and src.frame_time == pytest.approx(1.5)
        assert abs(int(frame[5, 150, 0]) - 4 * 45) <= 3  # frame i has brightness 4 i
        src.request_seek(1000)  # past the end: the last frame
        assert src.read() is not None and src.position == 59
    finally:
        src.close()


def test_a_looping_video_starts_its_clock_again(fake_camera_video: Path) -> None:
    src = VideoFileSource(fake_camera_video, fps=0, loop=True)
    src.open()
    try:
        times = []
        for _ in range(62):
            src.read()
            times.append(src.frame_time)
        assert times[59] == pytest.approx(59 / 30) and times[60] == 0.0 and times[61] == pytest.approx(1 / 30)
    finally:
        src.close()
