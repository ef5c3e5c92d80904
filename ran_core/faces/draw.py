"""Draw predictions on an image: face box, label, region boxes coloured by attention weight, and a colour bar.

Region colours come from matplotlib's ``viridis`` (perceptually uniform, readable in grayscale and by colour-blind
readers) applied to each region's normalised α·β share, scaled to the largest share in the image so the contrast
between regions stays visible; the colour bar beside the image says which share the top colour stands for.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from matplotlib import colormaps

from ran_core.structures import FaceResult

COLORMAP = "viridis"
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def region_shares(face: FaceResult) -> np.ndarray | None:
    """``(K,)`` α·β of every region divided by their sum (each region's share), or ``None`` without attention."""
    w = np.array([r.weight for r in face.regions], dtype=np.float64)
    if len(w) == 0 or not np.isfinite(w).all() or w.sum() <= 0:
        return None
    return w / w.sum()


def _rgb(cmap, value: float) -> tuple[int, int, int]:
    r, g, b, _ = cmap(float(np.clip(value, 0.0, 1.0)))
    return int(r * 255), int(g * 255), int(b * 255)


def _ink(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``bg`` (viridis runs from dark purple to light yellow)."""
    luminance = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2]
    return (0, 0, 0) if luminance > 110 else (255, 255, 255)


def _text_layout(
    text: str, org: tuple[int, int], scale: float, thick: int
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Where :func:`_text` puts ``text`` written at ``org``: its background box and the glyphs' baseline origin."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    x, y = org
    y = max(y, th + base)  # kept on the image
    return (x, y - th - base, x + tw + 2, y + base), (x + 1, y - 1)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thick: int, bg=None) -> None:
    (x1, y1, x2, y2), origin = _text_layout(text, org, scale, thick)
    if bg is not None:
        cv2.rectangle(img, (x1, y1), (x2, y2 - 1), bg, -1)
    cv2.putText(img, text, origin, _FONT, scale, color, thick, cv2.LINE_AA)


def _place_label(
    box, size: tuple[int, int], pad: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int] | None:
    """Left x and bottom y of a ``size`` = (w, h) label at a corner of ``box`` that no earlier label covers.

    Nested region boxes share edges, so their numbers would stack in one corner: the four inner corners are tried,
    then the four just outside the box; ``None`` when all are covered (the box's colour still tells its weight).
    """
    x1, y1, x2, y2 = box
    w, h = size
    left, right = x1 + pad, x2 - pad - w
    candidates = [(left, y2 - pad), (left, y1 + pad + h), (right, y2 - pad), (right, y1 + pad + h)]
    candidates += [(left, y2 + h), (right, y2 + h), (left, y1), (right, y1)]
    for x, y in candidates:
        rect = (x, y - h, x + w, y)
        if not any(rect[0] < r[2] and r[0] < rect[2] and rect[1] < r[3] and r[1] < rect[3] for r in taken):
            taken.append(rect)
            return x, y
    return None


def draw_faces(rgb: np.ndarray, faces: Sequence[FaceResult], colorbar: bool = True) -> np.ndarray:
    """An annotated copy of ``rgb`` (``(H, W, 3)`` uint8), plus a colour-bar panel on the right for attention.

    Args:
        rgb: the image the faces were found in (their boxes are in its coordinates).
        faces: predictions for that image.
        colorbar: add the colour-bar panel (always added when ``True`` and any face has weights, so every frame of a
            video has the same size if at least its first one does).
    """
    img = np.ascontiguousarray(rgb.copy())
    h, w = img.shape[:2]
    unit = max(h, w) / 800.0
    thick = max(1, round(2 * unit))
    scale = max(0.45, 0.5 * unit)
    text_thick = max(1, round(1.4 * unit))  # Hershey glyphs clog up when drawn thicker than ~1/3 of their scale
    cmap = colormaps[COLORMAP]
    shares = [region_shares(f) for f in faces]
    vmax = max((float(s.max()) for s in shares if s is not None), default=0.0)
    for face, share in zip(faces, shares):
        fx1, fy1, fx2, fy2 = (round(v) for v in face.box)
        face_label = _face_label(face)
        if share is not None:
            # Largest first so smaller (inner) boxes stay on top.
            order = sorted(range(len(face.regions)), key=lambda i: -_area(face.regions[i].box))
            boxes = {i: tuple(round(v) for v in face.regions[i].box) for i in order}
            for i in order:
                x1, y1, x2, y2 = boxes[i]
                cv2.rectangle(img, (x1, y1), (x2, y2), _rgb(cmap, share[i] / vmax), thick)
        cv2.rectangle(img, (fx1, fy1), (fx2, fy2), (255, 255, 255), thick + 1)
        if face.landmarks is not None:
            for px, py in np.asarray(face.landmarks).reshape(-1, 2):
                cv2.circle(img, (round(px), round(py)), max(1, thick), (255, 80, 80), -1)
        # Labels after every line, so no box crosses a number; the face's label keeps its place above the face.
        taken = [_text_layout(face_label, (fx1, fy1 - thick), scale, text_thick)[0]]
        if share is not None:
            for i in reversed(order):  # numbers of the small inner boxes first: they have the fewest free corners
                color = _rgb(cmap, share[i] / vmax)
                text = f"{share[i]:.2f}"
                (tw, th), base = cv2.getTextSize(text, _FONT, scale * 0.8, 1)
                spot = _place_label(boxes[i], (tw + 2, th + 2 * base), thick, taken)
                if spot is not None:
                    _text(img, text, (spot[0], spot[1] - base), scale * 0.8, _ink(color), 1, bg=color)
        _text(img, face_label, (fx1, fy1 - thick), scale, (0, 0, 0), text_thick, (255, 255, 255))
    if colorbar and vmax > 0:
        img = np.hstack([img, _colorbar(h, vmax, scale, cmap)])
    return img


def _face_label(face: FaceResult) -> str:
    tag = "" if face.track_id is None else f"#{face.track_id} "
    return f"{tag}{face.label} {face.confidence:.2f}"


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _colorbar(height: int, vmax: float, scale: float, cmap) -> np.ndarray:
    """A white panel with a vertical gradient from 0 (bottom) to ``vmax`` (top), labelled."""
    (tw, th), _ = cv2.getTextSize("a*b 0.00", _FONT, scale, 1)
    width = max(40, tw + 10)
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    top, bottom = 2 * th + 8, height - th - 8
    bar_w = max(8, width // 3)
    if bottom - top >= 4:
        ramp = np.linspace(1.0, 0.0, bottom - top)
        colors = (cmap(ramp)[:, :3] * 255).astype(np.uint8)
        panel[top:bottom, 4 : 4 + bar_w] = colors[:, None, :]
    _text(panel, "a*b", (2, th + 2), scale, (0, 0, 0), 1)
    _text(panel, f"{vmax:.2f}", (6 + bar_w, top + th), scale * 0.9, (0, 0, 0), 1)
    _text(panel, "0", (6 + bar_w, bottom), scale * 0.9, (0, 0, 0), 1)
    return panel
