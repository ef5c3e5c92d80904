"""Nothing a user feeds the tools crashes them: a generated corpus of awkward files through `ran-core predict`, and
property-based sizes and modes through the Predictor and each detector."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_corpus import MODES, make_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ran_core import create_model, save_model
from ran_core.cli import main
from ran_core.faces import create_detector
from ran_core.imageio import ImageReadError
from ran_core.predictor import Predictor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("ran_compact"), tmp_path_factory.mktemp("m") / "ran")


def test_corpus_through_predict_loses_nothing(model_dir, tmp_path, capsys) -> None:
    root = tmp_path / "corpus"
    kinds = make_corpus(root)
    out = tmp_path / "r.json"
    rc = main(["predict", str(root), "--model", str(model_dir), "--detector", "mtcnn", "--json", str(out)])
    assert rc == 1  # some inputs could not be read: said by the exit status, after everything was processed
    entries = {os.path.basename(e["path"]): e for e in json.loads(out.read_text())["inputs"]}
    assert set(entries) == set(kinds), set(kinds) ^ set(entries)  # every file has its entry, bad ones included
    for name, kind in kinds.items():
        entry = entries[name]
        if kind == "bad":
            assert "error" in entry and name.split(".")[0] in os.path.basename(entry["path"])
        else:
            assert "error" not in entry and isinstance(entry["faces"], list), name
    for name in kinds:
        if name.startswith(("mode_", "exif_", "photo.", "animated", "png_named", "caf")):
            assert len(entries[name]["faces"]) == 1, name  # the face is found in every mode and orientation
    assert "5 of" in capsys.readouterr().err
    # the valid images' results do not depend on the bad ones being there
    alone = tmp_path / "alone.json"
    picks = [root / "mode_RGB.png", root / "exif_6.jpg"]
    assert (
        main(["predict", *map(str, picks), "--model", str(model_dir), "--detector", "mtcnn", "--json", str(alone)]) == 0
    )
    for e in json.loads(alone.read_text())["inputs"]:
        assert e["faces"] == entries[os.path.basename(e["path"])]["faces"]


def _image(w: int, h: int, mode: str, seed: int) -> Image.Image:
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    return img.convert("L").convert(mode) if mode in ("I;16", "I", "F") else img.convert(mode)


sizes = st.tuples(st.integers(1, 400), st.integers(1, 400)) | st.tuples(st.integers(1, 40), st.integers(200, 2000))


@pytest.fixture(scope="module")
def predictors(model_dir) -> dict[str, Predictor]:
    from ran_core.faces.detectors import detector_status

    names = [n for n in ("mtcnn", "haar", "blazeface", "fan") if detector_status().get(n) is None]
    return {name: Predictor(model_dir, detector=create_detector(name)) for name in names}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, mode=st.sampled_from(MODES), seed=st.integers(0, 10_000), flip=st.booleans())
def test_any_size_and_mode_never_crashes_the_predictor_or_detectors(predictors, size, mode, seed, flip) -> None:
    w, h = size if not flip else size[::-1]
    img = _image(w, h, mode, seed)
    for name, predictor in predictors.items():
        faces = predictor(img)
        assert isinstance(faces, list)
        for f in faces:
            assert np.isfinite(f.probabilities).all() and abs(f.probabilities.sum() - 1) < 1e-4
        assert isinstance(predictor.detector.detect(np.asarray(img.convert("RGB"))), list), name
    with pytest.raises(ImageReadError):
        predictors["haar"](b"\x89PNG\r\n\x1a\n" + bytes(seed % 50))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes, seed=st.integers(0, 10_000))
def test_whole_face_mode_on_any_size(predictors, size, seed) -> None:
    whole = Predictor(predictors["haar"].model, detector=predictors["mtcnn"].detector, faces="whole")
    faces = whole(_image(*size, "RGB", seed))
    assert len(faces) == 1 and np.isfinite(faces[0].probabilities).all()
