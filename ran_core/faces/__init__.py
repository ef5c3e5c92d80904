"""Faces in the wild: detection and landmarks behind one interface, alignment to the training framing, tracking."""

from ran_core.faces.alignment import AlignedFace, align_face, template_for_margin
from ran_core.faces.detectors import (
    AUTO_ORDER,
    Detection,
    DetectorUnavailable,
    DownscalingDetector,
    FaceDetector,
    create_detector,
    detector_status,
    five_point_landmarks,
    list_detectors,
    register_detector,
    resolve_auto,
)
from ran_core.faces.tracking import IoUTracker, box_iou

__all__ = [
    "AUTO_ORDER",
    "AlignedFace",
    "Detection",
    "DetectorUnavailable",
    "DownscalingDetector",
    "FaceDetector",
    "IoUTracker",
    "align_face",
    "box_iou",
    "create_detector",
    "detector_status",
    "five_point_landmarks",
    "list_detectors",
    "register_detector",
    "resolve_auto",
    "template_for_margin",
]
