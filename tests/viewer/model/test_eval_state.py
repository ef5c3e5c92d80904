"""EvalState without Qt: form validation, results, confusion matrices, cell selection and the browser filter."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import BASE_PREDS, CLASSES, RAN_PREDS, TARGETS, make_analyses, make_pair, make_result

from ran_viewer.model.eval_state import BrowserFilter, EvalAnalyses, EvalRequest, EvalState, GalleryItem


def record(event) -> list:
    calls: list = []
    event.connect(lambda *args: calls.append(args))
    return calls


def test_form_validation_lists_every_problem(tmp_path) -> None:
    s = EvalState()
    problems = s.validate()
    assert any("dataset folder" in p for p in problems) and any("model" in p for p in problems)
    s.set_form(root=str(tmp_path / "nope"), lists_dir=str(tmp_path / "nolists"))
    with pytest.raises(ValueError, match="Dataset folder not found") as err:
        s.make_request()
    assert "Subset-list folder not found" in str(err.value)


def test_make_request_skips_empty_roles(tmp_path) -> None:
    s = EvalState()
    calls = record(s.events.form)
    s.set_form(dataset="ferplus", root=str(tmp_path), split="valid")
    s.set_model("ran", " ran-ferplus ")
    s.set_form(root=str(tmp_path))  # unchanged: no event
    assert len(calls) == 2
    req = s.make_request()
    assert req == EvalRequest("ferplus", str(tmp_path), "valid", None, {"ran": "ran-ferplus"}, 64, None)
    with pytest.raises(ValueError):
        s.set_model("teacher", "x")


def test_results_accuracy_rows_and_sets() -> None:
    s = EvalState()
    events = record(s.events.results)
    s.set_results(make_pair())
    assert len(events) == 1
    assert s.roles == ["ran", "baseline"] and s.class_names == CLASSES
    assert s.subset_names == ["overall", "occlusion", "pose30"]
    assert s.available_sources == ["ran", "baseline", "difference"]
    rows = {r["set"]: r for r in s.accuracy_rows()}
    assert rows["overall"]["n"] == 8 and rows["overall"]["acc"]["ran"] == pytest.approx(75.0)
    assert rows["overall"]["acc"]["baseline"] == pytest.approx(50.0)
    assert rows["overall"]["diff"] == pytest.approx(25.0)
    assert rows["pose30"]["missing"] == 2 and rows["pose30"]["label"] == "Pose > 30°"
    assert rows["occlusion"]["acc"]["ran"] == pytest.approx(100.0)


def test_single_model_has_no_difference() -> None:
    s = EvalState()
    s.set_view(source="difference")
    s.set_results({"baseline": make_pair()["baseline"]})
    assert s.matrix_source == "baseline" and s.available_sources == ["baseline"]
    assert s.accuracy_rows()[0]["diff"] is None
    assert s.confusion("difference") is None
    with pytest.raises(ValueError):
        s.set_view(source="ran")


def test_mismatched_classes_rejected() -> None:
    s = EvalState()
    with pytest.raises(ValueError, match="different classes"):
        s.set_results({"ran": make_result([0, 1], [0, 1]), "baseline": make_result([0, 1], [0, 1], ["a", "b", "c"])})


def test_confusion_counts_normalised_and_difference() -> None:
    s = EvalState()
    s.set_results(make_pair())
    ran = s.confusion("ran")
    assert ran.dtype == np.int64 and ran.sum() == 8
    assert ran[2, 0] == 1 and ran[1, 2] == 1
    s.set_view(normalize=True)
    pct = s.confusion()
    np.testing.assert_allclose(np.nansum(pct, axis=1), 100.0)
    diff = s.confusion("difference", normalize=False)
    base = s.confusion("baseline", normalize=False)
    np.testing.assert_array_equal(diff, ran - base)
    occ = s.confusion("ran", matrix_set="occlusion", normalize=False)
    assert occ.sum() == 4
    # A class absent from a set gives an empty (nan) row when normalised.
    assert np.isnan(s.confusion("ran", matrix_set="occlusion", normalize=True)[2]).all()


def test_cell_selection_and_items() -> None:
    s = EvalState()
    s.set_results(make_pair(paths=[f"/img/{i}.png" for i in range(8)]))
    cells = record(s.events.cell)
    s.select_cell((2, 0))  # true surprise, RAN said neutral: sample 5
    assert cells == [((2, 0),)]
    items = s.cell_items()
    assert [it.index for it in items] == [5]
    it = items[0]
    assert it.path == "/img/5.png" and it.true_name == "surprise" and it.pred_name("ran") == "neutral"
    assert it.correct("ran") is False and it.correct("baseline") is False and it.status == "wrong"
    assert it.confidence["ran"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        s.select_cell((3, 0))
    # Diagonal cell of the baseline.
    s.set_view(source="baseline")
    s.select_cell((0, 0))
    assert [i.index for i in s.cell_items()] == [0]
    # Difference: true neutral, predicted neutral by exactly one model -> samples 1 (RAN) and 7 (RAN).
    s.set_view(source="difference")
    assert [i.index for i in s.cell_items()] == [1, 7]
    # Restricting the matrix to a subset restricts the images.
    s.set_view(matrix_set="pose30")
    assert [i.index for i in s.cell_items()] == [7]


def test_new_results_clear_the_cell() -> None:
    s = EvalState()
    s.set_results(make_pair())
    s.select_cell((0, 0))
    s.set_results(make_pair())
    assert s.selected_cell is None and s.cell_items() == []


def test_browser_filters() -> None:
    s = EvalState()
    s.set_results(make_pair())
    assert s.browser_filter.subset == "occlusion"
    assert list(s.browser_indices()) == [0, 1, 2, 3]
    events = record(s.events.browser)
    s.set_browser_filter(subset="overall", outcome="wrong")  # RAN wrong: 5, 6
    assert list(s.browser_indices()) == [5, 6] and len(events) == 1
    s.set_browser_filter(judge="baseline")  # baseline wrong: 1, 3, 5, 7
    assert list(s.browser_indices()) == [1, 3, 5, 7]
    s.set_browser_filter(outcome="all", disagreement="ran_wins")
    assert list(s.browser_indices()) == [1, 3, 7]
    s.set_browser_filter(disagreement="baseline_wins")
    assert list(s.browser_indices()) == [6]
    s.set_browser_filter(disagreement="disagree", true_class=1)
    assert list(s.browser_indices()) == [3, 6]
    assert all(isinstance(i, GalleryItem) for i in s.browser_items())
    assert s.browser_items()[0].status == "ran_wins"
    with pytest.raises(ValueError):
        s.set_browser_filter(outcome="maybe")
    with pytest.raises(ValueError):
        s.set_browser_filter(true_class=7)
    counts = s.subset_counts("overall")
    assert counts == {"n": 8, "ran_correct": 6, "baseline_correct": 4, "disagree": 4}


def test_browser_defaults_follow_results() -> None:
    s = EvalState()
    s.set_results({"baseline": make_result(TARGETS, BASE_PREDS)})  # no subsets, baseline only
    assert s.browser_filter == BrowserFilter(subset="overall", judge="baseline")
    s.set_browser_filter(disagreement="disagree")
    assert len(s.browser_indices()) == 0  # needs both models


def test_results_aligned_by_key_when_orders_differ() -> None:
    keys = [f"k{i}" for i in range(8)]
    ran = make_result(TARGETS, RAN_PREDS, keys=keys, subsets={"pose30": [4, 5, 6, 7]})
    order = [7, 6, 5, 4, 3, 2, 1]  # reversed and one image missing (unreadable for that model)
    base = make_result([TARGETS[i] for i in order], [BASE_PREDS[i] for i in order], keys=[keys[i] for i in order])
    s = EvalState()
    s.set_results({"ran": ran, "baseline": base})
    items = {it.index: it for it in s.items(range(8))}
    assert items[6].preds == {"ran": 2, "baseline": 1}
    assert items[0].preds == {"ran": 0}
    assert items[0].status == "correct"


def test_status_and_progress_events() -> None:
    s = EvalState()
    status, progress = record(s.events.status), record(s.events.progress)
    s.set_status("running", "go")
    s.set_status("running", "go")
    s.set_progress(3, 10, "Evaluating RAN")
    assert status == [("running", "go")] and progress == [(3, 10, "Evaluating RAN")]
    with pytest.raises(ValueError):
        s.set_status("exploded")


def test_subset_matching_nothing_is_reported() -> None:
    s = EvalState()
    res = make_result(TARGETS, RAN_PREDS, subsets={"occlusion": [], "pose30": [4, 5]}, missing={"occlusion": 605})
    base = make_result(TARGETS, BASE_PREDS, subsets={"occlusion": [], "pose30": [4, 5]}, missing={"occlusion": 605})
    s.set_results({"ran": res, "baseline": base})
    rows = {r["set"]: r for r in s.accuracy_rows()}
    assert rows["occlusion"]["n"] == 0 and rows["occlusion"]["missing"] == 605 and rows["occlusion"]["diff"] is None
    assert s.empty_subsets() == ["occlusion"]
    s.set_status("done", "ok", ["careful"])
    assert s.warnings == ["careful"]


def test_pose_bins_and_deletion_are_off_by_default_and_travel_in_the_request(tmp_path) -> None:
    s = EvalState()
    calls = record(s.events.options)
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran-ferplus")
    req = s.make_request()
    assert not req.pose_bins and not req.deletion
    s.set_options(pose_bins=True)
    s.set_options(pose_bins=True)  # unchanged: no event
    s.set_options(deletion=True)
    assert len(calls) == 2 and s.compute_pose_bins and s.compute_deletion
    req = s.make_request()
    assert req.pose_bins and req.deletion and req.deletion_orders == 3 and not req.agreement
    s.set_options(agreement=True)
    assert len(calls) == 3 and s.compute_agreement and s.make_request().agreement


def test_agreement_is_only_requested_for_datasets_with_votes(tmp_path) -> None:
    s = EvalState()
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran-ferplus")
    s.set_options(agreement=True)
    assert s.agreement_available and s.make_request().agreement
    s.set_form(dataset="rafdb")  # no votes: the option is kept but not asked of the worker
    assert not s.agreement_available and s.compute_agreement and not s.make_request().agreement
    s.set_form(dataset="FER+")  # an alias of ferplus
    assert s.agreement_available and s.make_request().agreement


def test_agreement_bin_rows() -> None:
    s = EvalState()
    assert s.agreement_bin_rows() == []
    s.set_results(make_pair(), make_analyses())
    rows = s.agreement_bin_rows()
    assert [r["bin"] for r in rows] == ["50-60%", "60-70%", "70-80%", "80-90%", "90-100%"]
    assert [r["label"] for r in rows] == ["> 50–60 %", "60–70 %", "70–80 %", "80–90 %", "90–100 %"]
    assert [r["n"] for r in rows] == [2, 1, 0, 1, 4]
    assert rows[0]["acc"] == {"ran": 50.0, "baseline": 0.0} and rows[2]["acc"] == {"ran": None, "baseline": None}
    assert [r["errors"]["baseline"] for r in rows] == [2, 1, 0, 0, 1]
    s.set_results(make_pair(), EvalAnalyses(agreement_bins={"ran": make_analyses().agreement_bins["ran"]}))
    assert s.analyses and list(s.agreement_bin_rows()[0]["acc"]) == ["ran"] and s.pose_bin_rows() == []
    with pytest.raises(ValueError, match="baseline"):
        s.set_results({"ran": make_pair()["ran"]}, EvalAnalyses(agreement_bins=make_analyses().agreement_bins))


def test_results_with_pose_bins_and_deletion_curves() -> None:
    s = EvalState()
    assert s.pose_bin_rows() == [] and s.deletion_lines() == [] and not s.analyses
    shown = record(s.events.results)
    s.set_results(make_pair(), make_analyses())
    assert len(shown) == 1 and s.analyses
    rows = s.pose_bin_rows()
    assert [r["bin"] for r in rows] == ["<15", "15-30", "30-45", ">=45", "unknown"]
    assert [r["label"] for r in rows] == ["< 15°", "15–30°", "30–45°", "≥ 45°", "unknown"]
    assert [r["n"] for r in rows] == [3, 2, 1, 0, 2]
    assert rows[0]["acc"] == {"ran": 100.0, "baseline": pytest.approx(66.667, abs=1e-3)}
    assert rows[3]["acc"] == {"ran": None, "baseline": None} and rows[4]["mean_yaw"] is None
    lines = s.deletion_lines()
    assert [(ln["role"], ln["order"]) for ln in lines] == [
        ("ran", "by_weight"),
        ("ran", "reverse"),
        ("ran", "random"),
        ("baseline", "by_weight"),
        ("baseline", "reverse"),
        ("baseline", "random"),
    ]
    assert lines[0]["label"] == "most-weighted first" and lines[3]["label"] == "most-sensitive first"
    assert lines[0]["steps"] == [0, 1, 2, 3, 4, 5] and lines[0]["accuracy"][:2] == [75.0, 40.0]
    # the AUC is ran_core's (trapezoid over the steps scaled to [0, 1]), not recomputed here
    assert lines[0]["auc"] == pytest.approx(make_analyses().deletion["ran"].auc["by_weight"])
    assert lines[0]["auc"] < lines[2]["auc"] < lines[1]["auc"]
    # new results without analyses clear them
    s.set_results(make_pair())
    assert s.pose_bin_rows() == [] and s.deletion_lines() == []


def test_analyses_of_a_model_not_evaluated_are_refused() -> None:
    s = EvalState()
    ran_only = {"ran": make_pair()["ran"]}
    with pytest.raises(ValueError, match="baseline"):
        s.set_results(ran_only, make_analyses())
    s.set_results(ran_only, EvalAnalyses(pose_bins={"ran": make_analyses().pose_bins["ran"]}))
    assert list(s.pose_bin_rows()[0]["acc"]) == ["ran"] and s.deletion_lines() == []
