"""Occluders drawn onto numpy images: patches, a bar across the eyes, a mask over the mouth, brush strokes.

Everything here is Qt-free: an occluder is a small frozen dataclass in ORIGINAL image pixel coordinates, and
:func:`apply_occluders` returns a new image with them burned in. The same list is applied for display and for
inference, so the model sees exactly what the user sees."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import cv2
import numpy as np

FILLS: tuple[str, ...] = ("black", "gray", "noise", "blur")


MID_GREY: tuple[int, int, int] = (128, 128, 128)  # fill "gray", and fill "mean" for a model with mean 0.5


TOOLS: tuple[str, ...] = ("none", "patch", "eyes", "mouth", "brush")


TOOL_LABELS: dict[str, str] = {
    "none": "Select / pan",
    "patch": "Patch (drag a rectangle)",
    "eyes": "Bar across the eyes (click a face, drag to move)",
    "mouth": "Mask over the mouth (click a face, drag to move)",
    "brush": "Brush (paint)",
}


Box = tuple[float, float, float, float]


Point = tuple[float, float]


@dataclass(frozen=True)
class Occluder:
    """Base class: a filled shape in image pixel coordinates."""

    fill: str = "black"
    # the colour of fill "mean" (RGB 0-255): a model's normalisation mean, what ran_core's deletion covers with
    color: tuple[int, int, int] | None = None

    def bounds(self) -> Box:
        """``(x1, y1, x2, y2)`` enclosing the shape."""
        raise NotImplementedError

    def draw_mask(self, mask: np.ndarray, offset: tuple[int, int]) -> None:
        """Set the shape's pixels to 255 in ``mask`` whose top-left corner is image pixel ``offset``."""
        raise NotImplementedError

    def moved(self, dx: float, dy: float) -> Occluder:
        """A copy shifted by ``(dx, dy)`` pixels."""
        raise NotImplementedError

    def contains(self, x: float, y: float) -> bool:
        """Whether the point lies inside the shape (used to grab an occluder and drag it)."""
        x1, y1, x2, y2 = self.bounds()
        if not (x1 <= x <= x2 and y1 <= y <= y2):
            return False
        ox, oy = int(math.floor(x1)), int(math.floor(y1))
        mask = np.zeros((int(math.ceil(y2)) - oy + 1, int(math.ceil(x2)) - ox + 1), np.uint8)
        self.draw_mask(mask, (ox, oy))
        return bool(mask[int(y) - oy, int(x) - ox])


@dataclass(frozen=True)
class RectOccluder(Occluder):
    """An axis-aligned patch."""

    x1: float = 0.0
    y1: float = 0.0
    x2: float = 0.0
    y2: float = 0.0

    def bounds(self) -> Box:
        return (min(self.x1, self.x2), min(self.y1, self.y2), max(self.x1, self.x2), max(self.y1, self.y2))

    def draw_mask(self, mask: np.ndarray, offset: tuple[int, int]) -> None:
        x1, y1, x2, y2 = self.bounds()
        ox, oy = offset
        mask[max(0, round(y1) - oy) : max(0, round(y2) - oy), max(0, round(x1) - ox) : max(0, round(x2) - ox)] = 255

    def moved(self, dx: float, dy: float) -> RectOccluder:
        return replace(self, x1=self.x1 + dx, y1=self.y1 + dy, x2=self.x2 + dx, y2=self.y2 + dy)


@dataclass(frozen=True)
class PolygonOccluder(Occluder):
    """A filled polygon (the eye bar is a rotated rectangle)."""

    points: tuple[Point, ...] = ()

    def bounds(self) -> Box:
        pts = np.asarray(self.points, dtype=float).reshape(-1, 2)
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))

    def draw_mask(self, mask: np.ndarray, offset: tuple[int, int]) -> None:
        pts = np.round(np.asarray(self.points, dtype=float) - np.asarray(offset, dtype=float)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8)

    def moved(self, dx: float, dy: float) -> PolygonOccluder:
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))


@dataclass(frozen=True)
class EllipseOccluder(Occluder):
    """A filled, possibly rotated ellipse (the mouth mask)."""

    cx: float = 0.0
    cy: float = 0.0
    rx: float = 1.0
    ry: float = 1.0
    angle: float = 0.0  # degrees, clockwise in image coordinates (y down), as cv2.ellipse

    def bounds(self) -> Box:
        r = max(self.rx, self.ry)
        return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)

    def draw_mask(self, mask: np.ndarray, offset: tuple[int, int]) -> None:
        center = (round(self.cx - offset[0]), round(self.cy - offset[1]))
        axes = (max(1, round(self.rx)), max(1, round(self.ry)))
        cv2.ellipse(mask, center, axes, self.angle, 0, 360, 255, thickness=-1)

    def moved(self, dx: float, dy: float) -> EllipseOccluder:
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)


@dataclass(frozen=True)
class BrushStroke(Occluder):
    """A painted stroke: round brush of ``radius`` pixels along ``points``."""

    points: tuple[Point, ...] = ()
    radius: float = 10.0

    def bounds(self) -> Box:
        pts = np.asarray(self.points, dtype=float).reshape(-1, 2)
        r = self.radius
        return (pts[:, 0].min() - r, pts[:, 1].min() - r, pts[:, 0].max() + r, pts[:, 1].max() + r)

    def draw_mask(self, mask: np.ndarray, offset: tuple[int, int]) -> None:
        pts = np.round(np.asarray(self.points, dtype=float) - np.asarray(offset, dtype=float)).astype(np.int32)
        r = max(1, round(self.radius))
        for p in pts:
            cv2.circle(mask, (int(p[0]), int(p[1])), r, 255, thickness=-1)
        if len(pts) > 1:
            cv2.polylines(mask, [pts], False, 255, thickness=2 * r)

    def moved(self, dx: float, dy: float) -> BrushStroke:
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))

    def extended(self, x: float, y: float) -> BrushStroke:
        """The stroke with one more point (points closer than a third of the radius are skipped)."""
        if self.points:
            lx, ly = self.points[-1]
            if math.hypot(x - lx, y - ly) < self.radius / 3:
                return self
        return replace(self, points=(*self.points, (x, y)))


def occluder_mask(occluder: Occluder, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of ``occluder`` on an image of ``shape``."""
    mask = np.zeros(shape[:2], np.uint8)
    occluder.draw_mask(mask, (0, 0))
    return mask > 0


def apply_occluders(image: np.ndarray, occluders: list[Occluder] | tuple[Occluder, ...]) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 uint8) with every occluder burned in, in order. Returns ``image`` itself if none."""
    if not occluders:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    for occ in occluders:
        x1, y1, x2, y2 = occ.bounds()
        ox, oy = max(0, int(math.floor(x1)) - 1), max(0, int(math.floor(y1)) - 1)
        ex, ey = min(w, int(math.ceil(x2)) + 2), min(h, int(math.ceil(y2)) + 2)
        if ex <= ox or ey <= oy:
            continue  # entirely outside the image
        mask = np.zeros((ey - oy, ex - ox), np.uint8)
        occ.draw_mask(mask, (ox, oy))
        sel = mask > 0
        if not sel.any():
            continue
        roi = out[oy:ey, ox:ex]
        roi[sel] = _fill_pixels(occ, roi, sel)
    return out


def _fill_pixels(occ: Occluder, roi: np.ndarray, sel: np.ndarray) -> np.ndarray:
    if occ.fill == "black":
        return np.zeros(3, np.uint8)
    if occ.fill == "gray":
        return np.asarray(MID_GREY, np.uint8)
    if occ.fill == "mean":
        return np.asarray(occ.color or MID_GREY, np.uint8)
    if occ.fill == "noise":
        # Seeded by the shape itself, so re-applying the same occluder gives the same pixels and live results
        # do not flicker between identical requests.
        rng = np.random.default_rng(zlib.crc32(repr(occ).encode()))
        return rng.integers(0, 256, size=(int(sel.sum()), roi.shape[2]), dtype=np.uint8)
    if occ.fill == "blur":
        k = max(3, (min(roi.shape[:2]) // 3) | 1)
        return cv2.GaussianBlur(roi, (k, k), 0)[sel]
    raise ValueError(f"unknown fill {occ.fill!r}; choose one of {', '.join(FILLS)} (or 'mean' with a colour)")


def mean_color(mean: tuple[float, ...] | list[float]) -> tuple[int, int, int]:
    """A model's normalisation mean (0-1, one value for grayscale models or three for RGB) as the RGB colour of fill
    ``mean``; mid-grey when the model gives none."""
    vals = [min(max(float(m), 0.0), 1.0) for m in mean] or [0.5]
    if len(vals) == 1:
        vals = vals * 3
    r, g, b = (round(255 * v) for v in vals[:3])
    return r, g, b


def face_keypoints(box: Box, landmarks: np.ndarray | None) -> dict[str, np.ndarray]:
    """Left eye, right eye, nose and mouth centre of a face, from 5 or 68 landmarks or, without them, the box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    pts = None if landmarks is None else np.asarray(landmarks, dtype=float).reshape(-1, 2)
    if pts is not None and len(pts) == 5:  # ran_core order: left_eye, right_eye, nose, mouth_left, mouth_right
        return {"left_eye": pts[0], "right_eye": pts[1], "nose": pts[2], "mouth": (pts[3] + pts[4]) / 2}
    if pts is not None and len(pts) == 68:  # iBUG 68-point layout
        return {
            "left_eye": pts[36:42].mean(0),
            "right_eye": pts[42:48].mean(0),
            "nose": pts[30],
            "mouth": pts[48:68].mean(0),
        }
    # Typical positions in a detector's face box when there are no landmarks.
    return {
        "left_eye": np.array([x1 + 0.32 * w, y1 + 0.40 * h]),
        "right_eye": np.array([x1 + 0.68 * w, y1 + 0.40 * h]),
        "nose": np.array([x1 + 0.50 * w, y1 + 0.60 * h]),
        "mouth": np.array([x1 + 0.50 * w, y1 + 0.78 * h]),
    }


def eye_bar(box: Box, landmarks: np.ndarray | None = None, fill: str = "black", height: float = 0.2) -> PolygonOccluder:
    """A bar across both eyes, along the eye line, as wide as the face and ``height`` × the face height tall."""
    kp = face_keypoints(box, landmarks)
    le, re = kp["left_eye"], kp["right_eye"]
    center = (le + re) / 2
    d = re - le
    norm = float(np.hypot(*d)) or 1.0
    u = d / norm  # along the eyes
    v = np.array([-u[1], u[0]])  # across
    half_len = 0.55 * (box[2] - box[0])
    half_h = 0.5 * height * (box[3] - box[1])
    corners = [center - u * half_len - v * half_h, center + u * half_len - v * half_h]
    corners += [center + u * half_len + v * half_h, center - u * half_len + v * half_h]
    return PolygonOccluder(fill=fill, points=tuple((float(p[0]), float(p[1])) for p in corners))


def mouth_mask(box: Box, landmarks: np.ndarray | None = None, fill: str = "black") -> EllipseOccluder:
    """An ellipse over the mouth and the lower nose, like a surgical mask seen from the front."""
    kp = face_keypoints(box, landmarks)
    le, re, nose, mouth = kp["left_eye"], kp["right_eye"], kp["nose"], kp["mouth"]
    w, h = box[2] - box[0], box[3] - box[1]
    center = (nose + 2 * mouth) / 3 + np.array([0.0, 0.05 * h])
    angle = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    return EllipseOccluder(fill=fill, cx=float(center[0]), cy=float(center[1]), rx=0.42 * w, ry=0.24 * h, angle=angle)
