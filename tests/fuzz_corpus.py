"""A corpus of awkward image files, generated on the fly: every PIL mode, sizes from 1x1 to 8000x8000, aspect ratios
to 1:100, animated GIF, WebP, TIFF, BMP, EXIF orientations 1-8, truncated and empty files, wrong extensions, a folder
named like an image, a symlink loop, and a file name that is not UTF-8."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F")


def _face(size: tuple[int, int] = (200, 240)) -> Image.Image:
    return Image.open(SAMPLES / "grace_hopper.jpg").convert("RGB").resize(size)


def make_corpus(root: Path) -> dict[str, str]:
    """Write the corpus into ``root``; returns file name -> what it is ('valid' for readable images, else 'bad')."""
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    face = _face()
    for mode in MODES:
        img = face.convert("L").convert(mode) if mode in ("I;16", "I", "F") else face.convert(mode)
        name = f"mode_{mode.replace(';', '_')}." + ("tiff" if mode in ("I;16", "I", "F", "CMYK", "PA") else "png")
        if mode == "CMYK":
            name = "mode_CMYK.jpg"
        img.save(root / name)
        kinds[name] = "valid"
    rng = np.random.default_rng(0)
    for w, h in ((1, 1), (2, 3), (8, 8), (18, 30), (30, 3000), (3000, 30), (6000, 60), (60, 6000), (100, 1)):
        name = f"size_{w}x{h}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
        kinds[name] = "valid"
    Image.new("RGB", (8000, 8000), (90, 120, 150)).save(root / "size_8000x8000.png")  # compresses to a few kB
    kinds["size_8000x8000.png"] = "valid"
    frames = [face.rotate(a) for a in (0, 10, 20)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    face.save(root / "photo.webp")
    face.save(root / "photo.tiff")
    face.save(root / "photo.bmp")
    kinds.update({"animated.gif": "valid", "photo.webp": "valid", "photo.tiff": "valid", "photo.bmp": "valid"})
    # Pixels stored as a camera would (turned or mirrored), the EXIF tag saying how to show them upright.
    stored = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    for orientation, method in stored.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        name = f"exif_{orientation}.jpg"
        (face if method is None else face.transpose(method)).save(root / name, exif=exif)
        kinds[name] = "valid"
    buf = io.BytesIO()
    face.save(buf, "JPEG")
    data = buf.getvalue()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "zero.png").write_bytes(b"")
    (root / "text.jpg").write_text("this is not an image")
    face.save(root / "png_named.jpg", "PNG")  # wrong extension, valid content
    kinds.update({"truncated.jpg": "bad", "zero.png": "bad", "text.jpg": "bad", "png_named.jpg": "valid"})
    (root / "folder.jpg").mkdir()
    kinds["folder.jpg"] = "bad"
    loop = root / "loop.png"
    os.symlink(loop.name, loop)  # points at itself
    kinds["loop.png"] = "bad"
    odd = os.fsencode(root) + b"/caf\xe9_latin1.png"  # a Latin-1 name: not valid UTF-8
    with open(odd, "wb") as fh:
        face.save(fh, "PNG")
    kinds[os.fsdecode(b"caf\xe9_latin1.png")] = "valid"
    return kinds
