"""read_image on the files users actually have, and clear errors (naming the file) on the ones it cannot read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ran_core.imageio import ImageReadError, read_image, to_gray

H, W = 12, 20


def _rgb() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 12, y * 20, np.full_like(x, 90)], axis=2).astype(np.uint8)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    rgb = _rgb()
    out = read_image(_save(Image.fromarray(rgb), tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb)
    np.testing.assert_array_equal(read_image(str(tmp_path / "a.png")), rgb)
    np.testing.assert_array_equal(read_image((tmp_path / "a.png").read_bytes()), rgb)


def test_grayscale(tmp_path: Path) -> None:
    gray = _rgb()[..., 0]
    out = read_image(_save(Image.fromarray(gray, mode="L"), tmp_path / "g.png"))
    assert out.shape == (H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_transparent_pixels_read_as_white(tmp_path: Path) -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, : W // 2, 3] = 255  # left half opaque red-ish, right half fully transparent
    rgba[0, 0, 3] = 128  # half transparent: halfway to white
    out = read_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "t.png"))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[1, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[:, W // 2 :], 255)
    np.testing.assert_allclose(out[0, 0], [228, 127, 127], atol=2)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (W, H), 0)
    img.putpalette([10, 20, 30, 0, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.info["transparency"] = 1
    out = read_image(_save(img, tmp_path / "p.png", transparency=1))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[5, 5], [10, 20, 30])


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, W, dtype=np.uint16)[None].repeat(H, axis=0)
    path = _save(Image.fromarray(ramp), tmp_path / "d.png")
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, : W // 2] = (220, 30, 30)
    rgb[:, W // 2 :] = (30, 30, 220)
    path = _save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "c.jpg", quality=100)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    assert out.shape == (H, W, 3)
    np.testing.assert_allclose(out[H // 2, 2].astype(int), [220, 30, 30], atol=12)
    np.testing.assert_allclose(out[H // 2, -3].astype(int), [30, 30, 220], atol=12)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, 0] = 255  # a white top-left corner
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(img, tmp_path / "r.png", exif=exif)
    out = read_image(path)
    assert out.shape == (W, H, 3)  # portrait now
    assert out[0, -1].min() == 255 and out[0, 0].max() == 0  # the marked corner went to the top right


def test_numpy_and_pil_inputs() -> None:
    rgb = _rgb()
    np.testing.assert_array_equal(read_image(rgb), rgb)
    np.testing.assert_array_equal(read_image(Image.fromarray(rgb)), rgb)
    np.testing.assert_array_equal(read_image(rgb[..., 0]), np.repeat(rgb[..., :1], 3, axis=2))
    np.testing.assert_array_equal(read_image(np.dstack([rgb, np.zeros((H, W), np.uint8)])), rgb)
    np.testing.assert_array_equal(read_image(rgb.astype(np.float32) / 255), rgb)
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(np.zeros((H, W, 2), np.uint8))
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(np.zeros((0, W, 3), np.uint8))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("name,label\nx,1\n"), "not an image"),
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "folder"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "face_042.jpg"
    make(path)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    assert "face_042.jpg" in str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(tmp_path: Path, fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cannot decode") as info:
        read_image(path)
    assert "cut." in str(info.value)
    with pytest.raises(ImageReadError, match="<bytes>"):
        read_image(buf.getvalue()[:100])


def test_to_gray_matches_pillow() -> None:
    rgb = _rgb()
    np.testing.assert_allclose(to_gray(rgb).astype(int), np.asarray(Image.fromarray(rgb).convert("L")), atol=1)
