"""Head pose (yaw, pitch, roll in degrees) from the 5 facial landmarks every ran_core detector with landmarks gives.

The 5 points (eye centres, nose tip, mouth corners) are matched to the same points of a generic 3-D face
(:data:`FACE_MODEL_3D`, in millimetres, proportioned like :data:`~ran_core.faces.alignment.FERPLUS_TEMPLATE`) with
OpenCV's ``solvePnP`` (SQPnP, which needs only 3 points and has no local minima). The nose tip sits ~30 mm in front
of the eye and mouth plane, so its offset from the eyes and mouth tells yaw and pitch apart from a shift; 68-point
landmarks are reduced to these 5. A geometric rule on 5 points (nose offset over eye distance) would give yaw too,
but not pitch and roll consistently, and PnP on 5 points plus the pitch refit costs ~0.2 ms.

The camera is taken to look straight at the face (principal point at the landmarks' centre, focal length the
image's longer side), so the angles are relative to the line of sight: a face looking at the camera is (0, 0, 0)
wherever it is in the picture. Conventions (the face's own left and right):

* **yaw** > 0: the face turns to its left (its nose moves towards the image's right);
* **pitch** > 0: the face tilts up (chin up);
* **roll** > 0: the head tilts towards its left shoulder (its left eye, on the image's right, goes down).

Pitch is then refitted with the mouth corners down-weighted (see :func:`_refit_pitch`): they move with the expression,
and a broad smile would otherwise read as the head tilted down.

Accuracy on synthetic points projected from the same model is better than 0.6 degrees up to |yaw| 60 (tested); on
real faces the generic model limits it to several degrees, enough to bin faces by |yaw| < 15, 15-30, 30-45, >= 45
as the RAN authors' pose subsets do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# x to the image's right, y down, z away from the camera (OpenCV camera axes for a face looking at the camera);
# origin between the eyes. Left/right are the image's (MTCNN's "left eye" is on the image's left).
FACE_MODEL_3D = np.array(
    [
        [-31.0, 0.0, 0.0],  # left eye centre
        [31.0, 0.0, 0.0],  # right eye centre
        [0.0, 35.0, -30.0],  # nose tip
        [-26.0, 66.0, -8.0],  # left mouth corner
        [26.0, 66.0, -8.0],  # right mouth corner
    ]
)


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees (see the module docstring for the signs)."""

    yaw: float
    pitch: float
    roll: float

    def to_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 2), "pitch": round(self.pitch, 2), "roll": round(self.roll, 2)}


def rotation_from_pose(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The ``(3, 3)`` model-to-camera rotation of a pose (the inverse of what :func:`estimate_pose` reads)."""
    y, p, r = math.radians(-yaw), math.radians(-pitch), math.radians(roll)
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _pose_from_rotation(rot: np.ndarray) -> HeadPose:
    # rot = Rz(roll) Ry(-yaw) Rx(-pitch)
    y = math.asin(max(-1.0, min(1.0, -rot[2, 0])))
    p = math.atan2(rot[2, 1], rot[2, 2])
    r = math.atan2(rot[1, 0], rot[0, 0])
    return HeadPose(yaw=-math.degrees(y), pitch=-math.degrees(p), roll=math.degrees(r))


def estimate_pose(landmarks: np.ndarray | None, image_size: tuple[int, int] | None = None) -> HeadPose | None:
    """Yaw, pitch and roll of a face from its ``(5, 2)`` (or ``(68, 2)``) landmarks in image pixels.

    Args:
        landmarks: points in :data:`ran_core.regions.LANDMARK_NAMES` order (or the iBUG 68), or None.
        image_size: ``(H, W)`` of the image the points are in; sets the focal length (default: from the points).

    Returns:
        the pose, or None without landmarks or when they are degenerate (all on a line, NaN).
    """
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 68:
        from ran_core.faces.detectors import five_point_landmarks

        pts = five_point_landmarks(pts)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        return None
    spread = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    if spread[-1] < 1e-3 * max(spread[0], 1e-9):
        return None
    if image_size is not None:
        focal = float(max(image_size))
    else:
        focal = 4.0 * float(np.ptp(pts, axis=0).max())
    cx, cy = pts.mean(0)
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL_3D, pts, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    rot, _ = cv2.Rodrigues(rvec)
    pose = _pose_from_rotation(rot)
    pitch = _refit_pitch(pts, pose, camera, float(tvec.ravel()[2]))
    return HeadPose(yaw=pose.yaw, pitch=pitch, roll=pose.roll)


_PITCH_GRID = np.arange(-80.0, 80.001, 0.5)
# Weights of eyes, nose tip and mouth corners in the pitch refit: the mouth only breaks the tie between the two
# pitches eyes and nose alone allow. 0.05 was the best of 0.02 / 0.05 / 0.1 / 0.2 on synthetic faces with and without
# a smile (corners 8 mm up, 4 mm out).
_PITCH_WEIGHTS = np.array([1.0, 1.0, 1.0, 0.05, 0.05])


def _pitch_rotations(pitches: np.ndarray) -> np.ndarray:
    """``Rx(-pitch)`` of :func:`rotation_from_pose` for many pitches at once, ``(G, 3, 3)``."""
    p = np.radians(-pitches)
    c, s = np.cos(p), np.sin(p)
    rx = np.zeros((len(p), 3, 3))
    rx[:, 0, 0] = 1.0
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = c, -s, s, c
    return rx


_PITCH_RX = _pitch_rotations(_PITCH_GRID)  # fixed grid: built once, not per face


def _refit_pitch(pts: np.ndarray, pose: HeadPose, camera: np.ndarray, depth: float) -> float:
    """Pitch refitted with the mouth corners down-weighted, yaw, roll and distance kept from the 5-point fit.

    Mouth corners move with the expression: a broad smile lifts and widens them, which the 5-point fit reads as the
    head tilted down (the frontal smiling astronaut sample came out at -34 degrees). Eyes and nose tip hardly move,
    but alone they allow two pitches (the nose's drop below the eyes is largest at about 40 degrees down); the
    mouth corners at weight 0.05 pick between them. The fit runs over a 0.5-degree grid in perspective at the 5-point
    fit's distance, the image shift solved per pitch, then a parabola through the best three grid points.
    """
    f, cx, cy = camera[0, 0], camera[0, 2], camera[1, 2]
    w = _PITCH_WEIGHTS
    rots = rotation_from_pose(pose.yaw, 0.0, pose.roll) @ _PITCH_RX  # Rz(roll) Ry(-yaw) Rx(-pitch), (G, 3, 3)
    cam = np.einsum("kj,gij->gki", FACE_MODEL_3D, rots)  # (G, 5, xyz)
    z = cam[..., 2] + depth
    tx = (w * ((pts[:, 0] - cx) * z / f - cam[..., 0])).sum(1, keepdims=True) / w.sum()
    ty = (w * ((pts[:, 1] - cy) * z / f - cam[..., 1])).sum(1, keepdims=True) / w.sum()
    res = (
        w * ((f * (cam[..., 0] + tx) / z + cx - pts[:, 0]) ** 2 + (f * (cam[..., 1] + ty) / z + cy - pts[:, 1]) ** 2)
    ).sum(1)
    res[(z <= 0).any(1)] = np.inf  # a point behind the camera: no solution
    if not np.isfinite(res).any():
        return pose.pitch
    i = int(np.clip(np.argmin(res), 1, len(res) - 2))
    a, b, c = res[i - 1], res[i], res[i + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if np.isfinite(denom) and denom > 1e-15 else 0.0
    return float(_PITCH_GRID[i] + max(-1.0, min(1.0, shift)) * (_PITCH_GRID[1] - _PITCH_GRID[0]))


def project_model(
    yaw: float, pitch: float, roll: float, focal: float = 500.0, distance: float = 600.0, centre=(320.0, 240.0)
) -> np.ndarray:
    """``(5, 2)`` image points of :data:`FACE_MODEL_3D` in a pose (for tests and demonstrations)."""
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(0)  # the line of sight goes through the face's centre
    cam = model @ rotation_from_pose(yaw, pitch, roll).T + np.array([0.0, 0.0, distance])
    return np.stack([focal * cam[:, 0] / cam[:, 2] + centre[0], focal * cam[:, 1] / cam[:, 2] + centre[1]], axis=1)
