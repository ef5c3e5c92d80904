"""The thumbnail thread of the image strip: decodes small previews off the GUI thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, Signal
from PySide6.QtGui import QImage


class ThumbnailWorker(QThread):
    """Decodes small previews of a list of images (fast JPEG draft mode) for the thumbnail strip.

    Signals:
        sig_thumbnail(index, QImage): one preview ready (a null QImage when the file is not readable).
    """

    sig_thumbnail = Signal(int, QImage)

    def __init__(self, paths: list[str], size: int = 96, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = list(paths)
        self.size = size
        self._mutex = QMutex()
        self._stop = False

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._stop = True

    def _stopped(self) -> bool:
        with QMutexLocker(self._mutex):
            return self._stop

    def run(self) -> None:
        """The thread loop (never raises: errors are emitted as ``sig_error``)."""
        for i, path in enumerate(self.paths):
            if self._stopped():
                return
            self.sig_thumbnail.emit(i, load_thumbnail(path, self.size))


def load_thumbnail(path: str | Path, size: int = 96) -> QImage:
    """A ``size``-pixel preview of an image file, or a null QImage when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at 1/2..1/8 scale, much faster than full size
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((size, size))
            data = img.tobytes()
            qimg = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
            return qimg.copy()  # own the pixels: ``data`` is freed when this function returns
    except Exception:  # noqa: BLE001 - a bad file gets an empty thumbnail; opening it reports the reason
        return QImage()
