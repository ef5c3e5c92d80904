"""EvalWorker with qtbot.waitSignal: a real FERPlus-layout folder and tiny saved models, bad inputs, cancelling."""

from __future__ import annotations

import threading
import time

import pytest
from eval_fixtures import make_ferplus, make_pair

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


def run_worker(qtbot, request: EvalRequest, backend=None, signal: str = "sig_finished") -> tuple[EvalWorker, list]:
    worker = EvalWorker(request, backend=backend)
    seen: dict[str, list] = {"progress": [], "error": [], "warning": []}
    worker.sig_progress.connect(lambda *a: seen["progress"].append(a))
    worker.sig_error.connect(seen["error"].append)
    worker.sig_warning.connect(seen["warning"].append)
    with qtbot.waitSignal(getattr(worker, signal), timeout=20000) as blocker:
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
    """Fake backend: no files, an evaluation of 50 'batches' that polls should_stop like the real one."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started = threading.Event()
        self.gui_thread_calls = 0

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
        for k in range(50):
            if stop():
                raise EvaluationCancelled("stop")
            if self.fail and k == 3:
                raise RuntimeError("CUDA out of memory (pretend)")
            time.sleep(0.01)
            progress(k + 1, 50)
        return make_pair()[model]


def test_worker_cancels(qtbot, tmp_path) -> None:
    backend = SlowBackend()
    worker = EvalWorker(EvalRequest("ferplus", str(tmp_path), "valid", None, {"ran": "ran"}), backend=backend)
    finished = []
    worker.sig_finished.connect(finished.append)
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
    assert w.backend.started.wait(5)
    w.run_evaluation()  # replaces the running worker: the first is stopped, waited for and disconnected
    assert not first.isRunning() and w.worker is not first
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
    assert w.backend.started.wait(5)
    w.shutdown()  # what the main window's close (or the app's aboutToQuit) does
    assert w.worker is None and not worker.isRunning()
