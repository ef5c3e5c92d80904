"""The evaluation backend: open a dataset split, load its subset lists and evaluate a model with ``ran_core``. No Qt
here; :class:`~ran_viewer.workers.evaluation.EvalWorker` calls it on its thread."""

from __future__ import annotations

from typing import Any

from ran_viewer.model.eval_state import EvalRequest


class CoreBackend:
    """The ``ran_core`` functions the worker calls; tests swap in a fake with the same four methods."""

    def open_dataset(self, request: EvalRequest) -> Any:
        from ran_core.data import open_dataset

        return open_dataset(request.dataset, request.root, request.split, max_samples=request.max_samples)

    def load_subset_lists(self, request: EvalRequest) -> dict[str, Any]:
        from ran_core.data import load_subset_lists

        return load_subset_lists(request.dataset, request.lists_dir)

    def load_model(self, name_or_path: str) -> Any:
        from ran_core import load_model

        return load_model(name_or_path)

    def evaluate(self, model: Any, split: Any, subsets: dict[str, Any] | None, request: EvalRequest, progress, stop):
        from ran_core.engine.evaluate import evaluate

        return evaluate(model, split, subsets, batch_size=request.batch_size, progress=progress, should_stop=stop)

    def is_cancelled(self, exc: BaseException) -> bool:
        try:
            from ran_core.engine.evaluate import EvaluationCancelled
        except ImportError:  # pragma: no cover - engine always ships with ran_core
            return False
        return isinstance(exc, EvaluationCancelled)
