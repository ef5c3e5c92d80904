"""Reading images the way users have them: any mode, bit depth or EXIF orientation, with clear errors."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Decompression-bomb guard: Pillow warns at ~89 Mpx and refuses at twice that; real photos stay far below.
Image.MAX_IMAGE_PIXELS = 250_000_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")  # read frame by frame through OpenCV


class ImageReadError(ValueError):
    """An input could not be read as an image; the message names the file and the reason."""


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        hi = 65535 if arr.max(initial=0) > 255 else 255
        return (arr.astype(np.float64) * (255.0 / hi)).round().clip(0, 255).astype(np.uint8)
    arr = arr.astype(np.float64)
    if arr.max(initial=0) > 1.0:
        arr = arr / 255.0
    return (arr * 255).round().clip(0, 255).astype(np.uint8)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image in any mode -> ``(H, W, 3)`` uint8 RGB, upright according to its EXIF orientation."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return np.repeat(_to_uint8(np.asarray(img))[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent pixels read as white, not black
        img = Image.alpha_composite(bg, rgba)
    return np.asarray(img.convert("RGB"))


def read_image(source: Any) -> np.ndarray:
    """Read a path, bytes, PIL image or numpy array as ``(H, W, 3)`` uint8 RGB.

    Numpy arrays are taken as RGB (or grayscale ``(H, W)``/``(H, W, 1)``, or RGBA); any dtype is scaled to uint8.

    Raises:
        ImageReadError: missing, empty, truncated, or not an image.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.size == 0:
            raise ImageReadError(f"array of shape {source.shape} is not an image")
        arr = _to_uint8(arr)
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        return np.ascontiguousarray(arr[..., :3])
    if isinstance(source, Image.Image):
        return pil_to_rgb(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageReadError("<bytes>: empty (0 bytes)")
        name, stream = "<bytes>", io.BytesIO(source)
    else:
        path = Path(source)
        name = str(path)
        if path.is_symlink() and not path.exists():
            raise ImageReadError(f"{name}: a symbolic link to nothing (or to itself)")
        if not path.exists():
            raise ImageReadError(f"{name}: file not found")
        if path.is_dir():
            raise ImageReadError(f"{name}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageReadError(f"{name}: file is empty (0 bytes)")
        stream = path
    try:
        with Image.open(stream) as img:
            img.load()
            return pil_to_rgb(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from None


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB uint8 -> ``(H, W)`` luma (ITU-R 601, as Pillow's ``convert('L')``)."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).round().astype(np.uint8)
