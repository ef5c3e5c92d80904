"""Face alignment: cut a square face crop framed like the training images, and map boxes back to the photo.

All coordinates are continuous pixel coordinates (``(0, 0, W, H)`` is the whole image), as in
:mod:`ran_core.regions`.

The bundled models learnt from FERPlus: 48x48 grayscale faces cropped tight, from the forehead to the chin. To show
the model a face from a photo the way it saw its training faces, the crop must reproduce that framing:

* with 5 landmarks, a similarity transform (rotation + uniform scale + shift, least squares) maps them onto
  :data:`FERPLUS_TEMPLATE`, the median MTCNN landmarks of 348 FERPlus training images;
* without landmarks, the crop is a square centred on the detector box, ``1 + 2 * face_margin`` times its longer side.
  On the same FERPlus images, OpenCV's Haar box sits inside the frame with a margin of 0.09-0.1 of its side on every
  side, so the default ``face_margin=0.1`` reproduces the framing for Haar-like boxes.

The template is stored for that reference margin and rescaled for others (:func:`template_for_margin`), so a model
saved with a larger ``face_margin`` sees more context around the face in both cases.

A box drawn in the crop maps back to the photo as the axis-aligned bounding box of its 4 mapped corners, so for a
rotated face a region box on the photo is a little larger than the region itself (it contains it exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# (x, y) of left eye, right eye, nose tip, left and right mouth corner as fractions of a FERPlus frame. Measured with
# facenet-pytorch's MTCNN on FER2013Train images 0-399 (upscaled x4; 348 faces found), median, made left-right
# symmetric (the measured centre line was at x = 0.49).
FERPLUS_TEMPLATE = np.array(
    [
        [0.307, 0.396],
        [0.693, 0.396],
        [0.500, 0.615],
        [0.338, 0.804],
        [0.662, 0.804],
    ]
)
# The margin (fraction of the face box side, each side) at which the FERPlus frame holds a Haar face box.
REFERENCE_MARGIN = 0.1


def template_for_margin(margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """``(5, 2)`` landmark template, as fractions of a square crop, for a crop of ``1 + 2 * margin`` face sides."""
    in_box = FERPLUS_TEMPLATE * (1 + 2 * REFERENCE_MARGIN) - REFERENCE_MARGIN  # fractions of the face box
    return (in_box + margin) / (1 + 2 * margin)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``(2, 3)`` matrix mapping ``src`` points onto ``dst`` (Umeyama, 1991).

    Deterministic (no RANSAC): with only 5 points every one of them matters.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("landmarks are all at one point")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1  # a similarity never mirrors
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    lin = scale * rot
    return np.hstack([lin, (mu_d - lin @ mu_s)[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` matrix to ``(N, 2)`` points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def boxes_through_affine(matrix: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Map ``(K, 4)`` XYXY boxes through ``matrix``: the bounding box of each box's 4 mapped corners."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)  # (K, 4, 2)
    mapped = apply_affine(matrix, corners.reshape(-1, 2)).reshape(-1, 4, 2)
    return np.concatenate([mapped.min(1), mapped.max(1)], axis=1)


@dataclass
class AlignedFace:
    """A face crop and the transforms between it and the source image.

    Attributes:
        crop: ``(S, S, 3)`` uint8 RGB crop.
        matrix: ``(2, 3)`` source -> crop (continuous pixel coordinates).
        inverse: ``(2, 3)`` crop -> source.
        landmarks: ``(5, 2)`` landmarks in crop coordinates, or ``None``.
        method: ``similarity`` (fitted to landmarks) or ``box`` (square around the detector box).
    """

    crop: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    landmarks: np.ndarray | None
    method: str

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """``(K, 4)`` boxes in the crop -> their bounding boxes in the source image."""
        return boxes_through_affine(self.inverse, boxes)

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        return apply_affine(self.inverse, points)


def crop_matrix(
    size: int, box: tuple[float, float, float, float], landmarks: np.ndarray | None = None, margin: float = 0.1
) -> tuple[np.ndarray, str]:
    """The source -> crop matrix for a face, and which method made it (``similarity`` or ``box``)."""
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 5 and np.isfinite(pts).all():
            try:
                return similarity_transform(pts, template_for_margin(margin) * size), "similarity"
            except (ValueError, np.linalg.LinAlgError):
                pass  # degenerate points: the box crop below is still a sensible framing
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    if side <= 0:
        raise ValueError(f"empty face box {box}")
    s = size / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]]), "box"


def align_face(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    landmarks: np.ndarray | None = None,
    size: int = 48,
    margin: float = 0.1,
) -> AlignedFace:
    """Cut an aligned ``size`` x ``size`` face crop (see the module docstring for the framing).

    Args:
        rgb: ``(H, W, 3)`` uint8 source image.
        box: detector box ``(x1, y1, x2, y2)`` in source coordinates.
        landmarks: ``(5, 2)`` points (LANDMARK_NAMES order) in source coordinates, or ``None``.
        size: side of the crop.
        margin: context around the face box on each side, as a fraction of its side.
    """
    matrix, method = crop_matrix(size, box, landmarks, margin)
    crop = warp_crop(rgb, matrix, size)
    lm = None if method == "box" else apply_affine(matrix, landmarks)
    return AlignedFace(crop=crop, matrix=matrix, inverse=invert_affine(matrix), landmarks=lm, method=method)


def warp_crop(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample ``rgb`` through ``matrix`` (source -> crop) into a ``size`` x ``size`` crop.

    A face many times larger than the crop is first shrunk with area averaging (only the part the crop covers), so
    the crop is not aliased; parts of the crop outside the image repeat the border pixels, because black bars are a
    pattern the model never saw around a training face.
    """
    h, w = rgb.shape[:2]
    corners = boxes_through_affine(invert_affine(matrix), np.array([[0.0, 0.0, size, size]]))[0]
    x0 = int(np.clip(np.floor(corners[0]) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(corners[1]) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[2]) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[3]) + 2, y0 + 1, h))
    roi = rgb[y0:y1, x0:x1]
    # roi pixel (continuous) -> source: shift by (x0, y0), then scale back if the roi was shrunk
    rx = ry = 1.0
    zoom = np.sqrt(abs(np.linalg.det(matrix[:, :2])))  # crop pixels per source pixel
    if zoom < 0.5:
        rh, rw = roi.shape[:2]
        nw, nh = max(1, round(rw * 2 * zoom)), max(1, round(rh * 2 * zoom))
        roi = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
        rx, ry = rw / nw, rh / nh
    to_source = np.array([[rx, 0.0, x0], [0.0, ry, y0], [0.0, 0.0, 1.0]])
    m = matrix @ to_source  # roi (continuous) -> crop (continuous)
    # OpenCV puts pixel centres at integer coordinates; continuous coordinates put them at +0.5.
    lin = m[:, :2]
    cv_m = np.hstack([lin, (m[:, 2] + lin @ [0.5, 0.5] - 0.5)[:, None]])
    return cv2.warpAffine(
        np.ascontiguousarray(roi), cv_m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
