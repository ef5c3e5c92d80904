"""EvalWorker with qtbot.waitSignal: a real FERPlus-layout folder and tiny saved models, bad inputs, cancelling."""

from __future__ import annotations

import threading

import pytest
from eval_fixtures import POSE_BINS, TurnedFaceDetector, make_deletion, make_ferplus, make_pair

import ran_core
from ran_core.engine.evaluate import EvaluationCancelled
from ran_viewer.model.eval_state import EvalRequest, EvalState
from ran_viewer.services.evaluation import CoreBackend
from ran_viewer.widgets.evaluation import QtEvaluationWidget
from ran_viewer.workers.evaluation import EvalWorker


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("models")
    return {
        "ran": str(ran_core.save_model(ran_core.create_model("ran_compact"), d / "ran")),
        "baseline": str(ran_core.save_model(ran_core.create_model("baseline_compact"), d / "baseline")),
    }


@pytest.fixture
def ferplus(tmp_path):
    return make_ferplus(tmp_path)


def run_worker(
    qtbot, request: EvalRequest, backend=None, signal: str = "sig_finished", timeout: int = 20000
) -> tuple[EvalWorker, list]:
    worker = EvalWorker(request, backend=backend)
    seen: dict[str, list] = {"progress": [], "error": [], "warning": [], "order": []}
    worker.sig_progress.connect(lambda *a: seen["progress"].append(a))
    worker.sig_error.connect(seen["error"].append)
    worker.sig_warning.connect(seen["warning"].append)
    worker.sig_analyses.connect(lambda a: (seen.setdefault("analyses", []).append(a), seen["order"].append("a")))
    worker.sig_finished.connect(lambda r: seen["order"].append("f"))
    with qtbot.waitSignal(getattr(worker, signal), timeout=timeout) as blocker:
        worker.start()
    worker.wait()
    return worker, [blocker.args, seen]


def test_worker_evaluates_both_models_with_subsets(qtbot, ferplus, models) -> None:
    root, lists = ferplus
    req = EvalRequest("ferplus", str(root), "valid", str(lists), models, batch_size=4)
    _, (args, seen) = run_worker(qtbot, req)
    results = args[0]
    assert set(results) == {"ran", "baseline"} and not seen["error"]
    ran = results["ran"]
    assert ran.overall.n == 6 and ran.class_names == list(ran_core.FERPLUS_CLASSES)
    assert ran.subsets["pose30"].n == 3 and ran.subsets["pose30"].missing == 1
    assert ran.subsets["occlusion"].n == 2
    assert ran.keys == results["baseline"].keys
    stages = {stage for _, _, stage in seen["progress"]}
    assert "Evaluating RAN" in stages and "Evaluating Baseline" in stages
    assert (6, 6, "Evaluating RAN") in seen["progress"]
    # The state takes the worker's results as they are.
    s = EvalState()
    s.set_results(results)
    assert s.subset_names == ["overall", "occlusion", "pose30"]
    assert len(s.browser_items()) == 2


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_root", "Dataset folder not found"),
        ("no_label_file", "Could not open ferplus"),
        ("bad_lists", "Could not read the subset lists"),
        ("pickled_model", "RAN model"),
        ("unknown_model", "could not be loaded"),
    ],
)
def test_worker_reports_bad_input(qtbot, ferplus, models, tmp_path, case, expected) -> None:
    root, lists = ferplus
    req = dict(dataset="ferplus", root=str(root), split="valid", lists_dir=None, models=dict(models))
    if case == "missing_root":
        req["root"] = str(tmp_path / "nowhere")
    elif case == "no_label_file":
        (root / "FER2013Valid" / "label.csv").unlink()
    elif case == "bad_lists":
        empty = tmp_path / "empty_lists"
        empty.mkdir()
        req["lists_dir"] = str(empty)
    elif case == "pickled_model":
        bad = tmp_path / "weights.pth"
        bad.write_bytes(b"\x80\x04not ours")
        req["models"] = {"ran": str(bad)}
    else:
        req["models"] = {"ran": "no-such-model"}
    _, (args, _) = run_worker(qtbot, EvalRequest(**req), signal="sig_error")
    assert expected in args[0]
    if case == "pickled_model":
        assert "not a ran_core saved model" in args[0]


class SlowBackend(CoreBackend):
    """Fake backend: no files; an evaluation of 50 'batches' that polls should_stop like the real one, and that waits
    before its first batch until the test releases it (``release``), so the test decides when it is running. With
    ``gated=False`` it runs straight through. ``fail`` raises at once."""

    def __init__(self, fail: bool = False, gated: bool = True) -> None:
        self.fail = fail
        self.started = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()
        self.gui_thread_calls = 0

    def _wait_for_release(self, stop) -> None:
        assert self.release.wait(10), "the test never released the fake evaluation"
        if stop():
            self.release.clear()  # released by a stop: the next run (a re-run) waits again

    def open_dataset(self, request):
        class Split:
            samples = list(range(50))

        return Split()

    def load_subset_lists(self, request):
        return {}

    def load_model(self, name):
        return name

    def evaluate(self, model, split, subsets, request, progress, stop):
        if threading.current_thread() is threading.main_thread():
            self.gui_thread_calls += 1
        self.started.set()
        if self.fail:
            raise RuntimeError("CUDA out of memory (pretend)")
        self._wait_for_release(stop)
        for k in range(50):
            if stop():
                raise EvaluationCancelled("stop")
            progress(k + 1, 50)
        return make_pair()[model]


def release_on_stop(worker, backend: SlowBackend) -> None:
    """Asking ``worker`` to stop also releases the fake evaluation, which then sees the stop at its next batch."""
    stop = worker.stop
    worker.stop = lambda: (stop(), backend.release.set())


def test_worker_cancels(qtbot, tmp_path) -> None:
    backend = SlowBackend()
    worker = EvalWorker(EvalRequest("ferplus", str(tmp_path), "valid", None, {"ran": "ran"}), backend=backend)
    finished = []
    worker.sig_finished.connect(finished.append)
    release_on_stop(worker, backend)
    with qtbot.waitSignal(worker.sig_cancelled, timeout=5000):
        worker.start()
        assert backend.started.wait(5)
        worker.stop()
    worker.wait()
    assert not finished and backend.gui_thread_calls == 0


def test_worker_turns_unexpected_exception_into_message(qtbot, tmp_path) -> None:
    req = EvalRequest("ferplus", str(tmp_path), "valid", None, {"ran": "ran"})
    _, (args, _) = run_worker(qtbot, req, backend=SlowBackend(fail=True), signal="sig_error")
    assert args[0].startswith("Evaluation failed: RuntimeError: CUDA out of memory")


def test_widget_runs_in_background_and_shows_results(qtbot, tmp_path) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    qtbot.addWidget(w)
    w.backend = SlowBackend()
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran")
    s.set_model("baseline", "baseline")
    assert w.run_evaluation()
    # run_evaluation returned at once: the GUI thread is free while the worker evaluates.
    assert s.status == "running" and not w.run_button.isEnabled() and w.cancel_button.isEnabled()
    w.backend.release.set()
    qtbot.waitUntil(lambda: s.status == "done", timeout=10000)
    assert s.roles == ["ran", "baseline"] and w.worker is None
    assert "RAN 75.00%" in w.status_label.text() and w.table.rowCount() == 3
    assert w.run_button.isEnabled() and not w.progress_bar.isVisible()


def test_widget_cancel_and_rerun_replaces_worker(qtbot, tmp_path) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    qtbot.addWidget(w)
    w.backend = SlowBackend()
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran")
    w.run_evaluation()
    first = w.worker
    release_on_stop(first, w.backend)
    assert w.backend.started.wait(5)
    w.run_evaluation()  # replaces the running worker: the first is stopped, waited for and disconnected
    assert not first.isRunning() and w.worker is not first
    release_on_stop(w.worker, w.backend)
    qtbot.mouseClick(w.cancel_button, pytest.importorskip("PySide6.QtCore").Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: s.status == "cancelled", timeout=5000)
    assert "cancelled" in w.status_label.text() and not s.has_results


def test_widget_shows_worker_error(qtbot, tmp_path) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    qtbot.addWidget(w)
    w.backend = SlowBackend(fail=True)
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran")
    w.run_evaluation()
    qtbot.waitUntil(lambda: s.status == "error", timeout=5000)
    assert "CUDA out of memory" in w.status_label.text() and w.run_button.isEnabled()


def test_shutdown_stops_a_running_evaluation(qtbot, tmp_path) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    qtbot.addWidget(w)
    w.backend = SlowBackend()
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran")
    w.run_evaluation()
    worker = w.worker
    release_on_stop(worker, w.backend)
    assert w.backend.started.wait(5)
    w.shutdown()  # what the main window's close (or the app's aboutToQuit) does
    assert w.worker is None and not worker.isRunning()


@pytest.fixture
def turned_face_detector(monkeypatch, tmp_path):
    """``turned-face`` as a registered detector, and a landmark cache in ``tmp_path``."""
    from ran_core.faces import detectors as detectors_mod

    monkeypatch.setenv("RAN_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(detectors_mod, "_REGISTRY", dict(detectors_mod._REGISTRY))
    detectors_mod.register_detector("turned-face", lambda **kw: TurnedFaceDetector())
    return "turned-face"


def test_worker_computes_pose_bins_and_deletion_curves(qtbot, ferplus, models, turned_face_detector) -> None:
    """The real ran_core path on a tiny FERPlus tree: landmarks found (and cached), accuracy per |yaw| bin, and the
    deletion curves of both models on RAN's regions."""
    root, _ = ferplus
    req = EvalRequest(
        "ferplus",
        str(root),
        "valid",
        None,
        models,
        batch_size=4,
        pose_bins=True,
        deletion=True,
        deletion_orders=2,
        landmark_detector=turned_face_detector,
    )
    _, (args, seen) = run_worker(qtbot, req, timeout=60000)
    results = args[0]
    assert not seen["error"] and seen["order"] == ["a", "f"]  # the analyses come first, with the results
    analyses = seen["analyses"][0]
    ran_bins = analyses.pose_bins["ran"]
    assert list(ran_bins) == ["<15", "15-30", "30-45", ">=45", "unknown"]
    assert [ran_bins[b]["n"] for b in ran_bins] == [2, 2, 1, 0, 1]  # image 5 is too bright for the detector
    assert "unknown" in seen["warning"][0] and "1 of 6" in seen["warning"][0]
    assert "landmarks for 5 of 6" in analyses.landmarks
    correct = results["ran"].preds == results["ran"].targets
    assert ran_bins["<15"]["accuracy"] == pytest.approx(100.0 * correct[:2].mean())
    ran_del, base_del = analyses.deletion["ran"], analyses.deletion["baseline"]
    assert (ran_del.ranked_by, base_del.ranked_by) == ("attention", "sensitivity")
    assert ran_del.tta == base_del.tta == "none"  # one view a reading, whatever the models saved
    assert base_del.region_names == ran_del.region_names and len(ran_del.accuracy["by_weight"]) == 6
    assert ran_del.n == 6 and ran_del.accuracy["by_weight"][0] == pytest.approx(100.0 * correct.mean())
    stages = [stage for _, _, stage in seen["progress"]]
    assert any(s.startswith("Finding landmarks") for s in stages)
    assert (6, 6, "Deletion curves of Baseline") in seen["progress"]
    # the state shows them with the results
    s = EvalState()
    s.set_results(results, analyses)
    assert [r["n"] for r in s.pose_bin_rows()] == [2, 2, 1, 0, 1] and len(s.deletion_lines()) == 6


def test_worker_computes_agreement_bins(qtbot, ferplus, models) -> None:
    """The real ran_core path: every fixture face has 8 of 10 votes for its label."""
    root, _ = ferplus
    req = EvalRequest("ferplus", str(root), "valid", None, models, batch_size=4, agreement=True)
    _, (args, seen) = run_worker(qtbot, req)
    results, analyses = args[0], seen["analyses"][0]
    assert not seen["error"] and not seen["warning"] and not analyses.pose_bins and not analyses.deletion
    for role in ("ran", "baseline"):
        bins = analyses.agreement_bins[role]
        assert {k: v["n"] for k, v in bins.items()} == {
            "50-60%": 0,
            "60-70%": 0,
            "70-80%": 0,
            "80-90%": 6,
            "90-100%": 0,
        }
        assert bins["80-90%"]["accuracy"] == pytest.approx(results[role].overall.accuracy)
    assert any(stage == "Accuracy by annotator agreement" for _, _, stage in seen["progress"])


class NoVotesBackend(CoreBackend):
    def agreement_bins(self, result, split):
        raise ValueError("accuracy by annotator agreement needs the annotators' votes, which folder does not give")


def test_worker_on_a_split_without_votes_warns_and_keeps_the_results(qtbot, ferplus, models) -> None:
    root, _ = ferplus
    req = EvalRequest("ferplus", str(root), "valid", None, models, batch_size=4, agreement=True)
    _, (args, seen) = run_worker(qtbot, req, backend=NoVotesBackend())
    assert set(args[0]) == {"ran", "baseline"} and args[0]["ran"].overall.n == 6 and not seen["error"]
    assert seen["warning"] == [
        "No accuracy by annotator agreement: accuracy by annotator agreement needs the annotators' votes, which "
        "folder does not give"
    ]
    assert not seen.get("analyses") or not seen["analyses"][0]


def test_worker_without_a_landmark_detector_says_so(qtbot, ferplus, models) -> None:
    root, _ = ferplus
    req = EvalRequest("ferplus", str(root), "valid", None, models, pose_bins=True, landmark_detector="haar")
    _, (args, _) = run_worker(qtbot, req, signal="sig_error")
    assert args[0].startswith("Accuracy by head pose needs facial landmarks") and "haar" in args[0]


class SlowDeletionBackend(SlowBackend):
    """The fake evaluation, then deletion curves of 50 batches that poll should_stop like ran_core's."""

    def __init__(self) -> None:
        super().__init__(gated=False)
        self.deletion_started = threading.Event()
        self.deletion_release = threading.Event()

    def regions_of(self, model):
        return None

    def deletion(self, model, split, regions, request, progress, stop):
        self.deletion_started.set()
        assert self.deletion_release.wait(10), "the test never released the fake deletion curves"
        for k in range(50):
            if stop():
                raise EvaluationCancelled("stop")
            progress(k + 1, 50)
        raise AssertionError("the deletion curves were not cancelled")


def test_worker_cancels_during_the_deletion_curves(qtbot, tmp_path) -> None:
    backend = SlowDeletionBackend()
    req = EvalRequest("ferplus", str(tmp_path), "valid", None, {"ran": "ran"}, deletion=True)
    worker = EvalWorker(req, backend=backend)
    finished, analyses = [], []
    worker.sig_finished.connect(finished.append)
    worker.sig_analyses.connect(analyses.append)
    with qtbot.waitSignal(worker.sig_cancelled, timeout=5000):
        worker.start()
        assert backend.deletion_started.wait(5)
        worker.stop()
        backend.deletion_release.set()
    worker.wait()
    assert not finished and not analyses


class AnalysesBackend(SlowBackend):
    """The fake evaluation with instant landmarks, pose bins and deletion curves."""

    def __init__(self) -> None:
        super().__init__(gated=False)

    def attach_landmarks(self, split, request, progress, stop):
        progress(50, 50)
        return type("Report", (), {"missing": [], "total": 50, "summary": lambda self: "landmarks for 50 of 50"})()

    def pose_bins(self, result, split):
        return POSE_BINS["ran" if result.model_name == "ran" else "baseline"]

    def regions_of(self, model):
        return None

    def deletion(self, model, split, regions, request, progress, stop):
        return make_deletion("attention" if model == "ran" else "sensitivity")


def test_widget_shows_pose_bins_and_deletion_of_a_run(qtbot, tmp_path) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    qtbot.addWidget(w)
    w.backend = AnalysesBackend()
    s.set_form(root=str(tmp_path))
    s.set_model("ran", "ran")
    s.set_model("baseline", "baseline")
    s.set_options(pose_bins=True, deletion=True)
    assert w.run_evaluation()
    qtbot.waitUntil(lambda: s.status == "done", timeout=10000)
    assert s.analyses.landmarks == "landmarks for 50 of 50"
    assert [r["acc"]["ran"] for r in s.pose_bin_rows()][:3] == [100.0, 50.0, 100.0]
    assert len(w.deletion_widget.curves) == 6 and not w.analysis_panel.isHidden()
    s.set_options(pose_bins=False, deletion=False)  # the next run asks for neither: they go
    assert w.run_evaluation()
    qtbot.waitUntil(lambda: s.status == "done", timeout=10000)
    assert not s.analyses and w.analysis_panel.isHidden()
