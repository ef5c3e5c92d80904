"""A small IoU tracker: keeps a face's index stable across video frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ran_core.faces.detectors import box_iou


@dataclass
class Track:
    """A face followed across frames: its id, last box, and frames since it was last matched."""

    id: int
    box: np.ndarray
    missed: int = 0


class IoUTracker:
    """Greedy IoU matching of each frame's boxes to the previous tracks.

    Faces move little between processed frames, so the pair with the highest overlap is matched first. With frame
    skipping a face can move by half its width between looks and overlap too little; boxes left unmatched are then
    paired with a track of similar size whose centre is within ``max_shift`` face sides. A face that disappears for
    up to ``max_missed`` processed frames (occluded, a missed detection) gets its id back when it returns. New faces
    get the next unused id, starting at 0.

    Args:
        iou_threshold: minimum IoU to continue a track.
        max_missed: processed frames a track survives without a match.
        max_shift: largest centre movement, in face sides, for the second (distance) pass; 0 turns it off.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15, max_shift: float = 0.75) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.max_shift = max_shift
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 0

    def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Match this frame's boxes to tracks; returns one track id per box (in the order given)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids: list[int | None] = [None] * len(boxes)
        matched: set[int] = set()
        if self.tracks and len(boxes):
            iou = box_iou(np.stack([t.box for t in self.tracks]), boxes)
            for ti, bi in zip(*np.unravel_index(np.argsort(-iou, axis=None), iou.shape)):
                if iou[ti, bi] < self.iou_threshold:
                    break
                if ti in matched or ids[bi] is not None:
                    continue
                matched.add(ti)
                ids[bi] = self.tracks[ti].id
                self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
            if self.max_shift > 0:
                self._match_by_distance(boxes, ids, matched)
        for ti, track in enumerate(self.tracks):
            if ti not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, tid in enumerate(ids):
            if tid is None:
                ids[bi] = self._next_id
                self.tracks.append(Track(self._next_id, boxes[bi]))
                self._next_id += 1
        return [int(i) for i in ids]

    def _match_by_distance(self, boxes: np.ndarray, ids: list[int | None], matched: set[int]) -> None:
        pairs = []
        for ti, track in enumerate(self.tracks):
            if ti in matched:
                continue
            t_side = (track.box[2:] - track.box[:2]).max()
            for bi, box in enumerate(boxes):
                if ids[bi] is not None:
                    continue
                side = (box[2:] - box[:2]).max()
                dist = np.linalg.norm((box[:2] + box[2:]) / 2 - (track.box[:2] + track.box[2:]) / 2)
                if 1 / 1.5 <= side / max(t_side, 1e-9) <= 1.5 and dist <= self.max_shift * (side + t_side) / 2:
                    pairs.append((dist, ti, bi))
        for _, ti, bi in sorted(pairs):
            if ti in matched or ids[bi] is not None:
                continue
            matched.add(ti)
            ids[bi] = self.tracks[ti].id
            self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
