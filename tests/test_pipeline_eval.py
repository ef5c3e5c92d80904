"""The photo-path evaluation: faces pasted into larger pictures, then detected, aligned and classified."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ran_core.engine.pipeline_eval as pe
from ran_core import create_model, save_model
from ran_core.cli import main as cli_main
from ran_core.data import open_dataset
from ran_core.faces import Detection, detectors
from ran_core.predictor import Predictor


def _constant(class_index: int):
    model = create_model("baseline_compact")
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[class_index] = 10.0
    return model.eval()


class _Oracle:
    """Finds exactly the box where the last face was pasted (or nothing, with ``blind``)."""

    name = "oracle"

    def __init__(self, blind: bool = False) -> None:
        self.blind = blind
        self.last: tuple[float, float, float, float] | None = None

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [] if self.blind or self.last is None else [Detection(self.last)]


@pytest.fixture
def oracle(monkeypatch) -> _Oracle:
    det = _Oracle()
    real = pe.place_in_canvas

    def recording(*args, **kwargs):
        picture, placed = real(*args, **kwargs)
        det.last = placed
        return picture, placed

    monkeypatch.setattr(pe, "place_in_canvas", recording)
    return det


def test_place_in_canvas_geometry() -> None:
    face = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    pic, (x1, y1, x2, y2) = pe.place_in_canvas(face, 96, 200, np.random.default_rng(1))
    assert pic.shape == (200, 200, 3) and (x2 - x1, y2 - y1) == (96, 96)
    assert 0 <= x1 and x2 <= 200 and 0 <= y1 and y2 <= 200
    inner = pic[int(y1) : int(y2), int(x1) : int(x2), 0].astype(np.float64)
    assert np.corrcoef(inner[::2, ::2].ravel(), face.ravel())[0, 1] > 0.9  # the face, upscaled, is where it says
    with pytest.raises(ValueError, match="canvas"):
        pe.place_in_canvas(face, 96, 64, np.random.default_rng(0))


def test_found_faces_are_scored_and_missed_ones_count_as_wrong(ferplus_root, oracle) -> None:
    split = open_dataset("ferplus", ferplus_root, "valid")  # labels 0,1,1,2,3,3,3,4,5,6,7,1
    seen = Predictor(_constant(1), detector=oracle)
    blind = Predictor(_constant(1), detector=_Oracle(blind=True))
    (res,) = pe.evaluate_through_predictor([seen], split, upscale=96, canvas=160)
    assert (res.n, res.found) == (12, 12)
    assert res.overall.accuracy == pytest.approx(100 * 3 / 12)  # a constant model: framing cannot change it
    (missed,) = pe.evaluate_through_predictor([blind], split, upscale=96, canvas=160)
    assert missed.found == 0 and missed.overall.accuracy == 0.0 and (missed.preds == -1).all()


def test_eval_cli_through_predict(ferplus_root, tmp_path, oracle, monkeypatch) -> None:
    monkeypatch.setattr(detectors, "_REGISTRY", dict(detectors._REGISTRY))  # the test's detector goes with it
    detectors.register_detector("oracle-test", lambda **kw: oracle)
    save_model(_constant(3), tmp_path / "m3")
    argv = ["eval", "--checkpoint", str(tmp_path / "m3"), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
    argv += ["--split", "valid", "--out", str(tmp_path / "e"), "--workers", "0", "--through-predict"]
    argv += ["--detector", "oracle-test", "--upscale", "96", "--canvas", "160"]
    assert cli_main(argv) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    photo = m["through_predict"]["models"]["m3"]
    assert photo["found"] == 12 and photo["accuracy"] == pytest.approx(m["overall"]["accuracy"])
    assert photo["eval_accuracy"] == pytest.approx(m["overall"]["accuracy"])
