"""The evaluation backend: open a dataset split, load its subset lists and evaluate a model with ``ran_core``, and on
request find landmarks for accuracy by head pose and measure the region deletion curves. No Qt here;
:class:`~ran_viewer.workers.evaluation.EvalWorker` calls it on its thread."""

from __future__ import annotations

from typing import Any

from ran_viewer.model.eval_state import EvalRequest


class CoreBackend:
    """The ``ran_core`` functions the worker calls; tests swap in a fake with the same methods."""

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

    def attach_landmarks(self, split: Any, request: EvalRequest, progress, stop) -> Any:
        """Give every sample of ``split`` landmarks (found once with a face detector, cached: ``eval --pose-bins``);
        returns the ``LandmarkReport``. Raises ``ran_core.faces.DetectorUnavailable`` when no detector can run."""
        from ran_core.data.landmarks import attach_landmarks

        return attach_landmarks(
            split, request.landmark_detector, progress=False, should_stop=stop, on_progress=progress
        )

    def is_detector_unavailable(self, exc: BaseException) -> bool:
        from ran_core.faces import DetectorUnavailable

        return isinstance(exc, DetectorUnavailable)

    def pose_bins(self, result: Any, split: Any) -> dict[str, dict]:
        """Accuracy of ``result`` by estimated |yaw| (bin -> ``accuracy``, ``n``, ``mean_yaw`` ...), from the
        landmarks :meth:`attach_landmarks` gave ``split``."""
        from ran_core.engine.pose_bins import pose_bin_metrics, split_poses

        return pose_bin_metrics(result, split_poses(split))

    def agreement_bins(self, result: Any, split: Any) -> dict[str, dict]:
        """Accuracy of ``result`` by how many annotators chose each label (bin -> ``accuracy``, ``n``, ``errors``
        ...). Raises ``ValueError`` when ``split`` has no annotator votes (only FERPlus has them)."""
        from ran_core.engine.agreement import agreement_bin_metrics, split_agreements

        return agreement_bin_metrics(result, split_agreements(split))

    def regions_of(self, model: Any) -> Any:
        """The regions a RAN model reads (the boxes the baseline's deletion curve covers too), ``None`` otherwise."""
        cfg = model.config
        return cfg.regions if cfg.arch == "ran" else None

    def deletion(self, model: Any, split: Any, regions: Any, request: EvalRequest, progress, stop) -> Any:
        """The region deletion curves of ``model`` on ``split`` (``eval --deletion``): a ``DeletionResult``."""
        from ran_core.data.pipeline import FaceDataset, cache_faces
        from ran_core.engine.deletion import deletion_curves

        cfg = model.config
        faces = cache_faces(FaceDataset(split.samples, cfg, cfg.input_size, cfg.num_classes), desc="decoding")
        device = next(model.parameters()).device
        return deletion_curves(
            model,
            faces,
            regions,
            request.batch_size,
            request.deletion_orders,
            device=device,
            progress=progress,
            should_stop=stop,
            tta=request.deletion_tta,
        )

    def is_cancelled(self, exc: BaseException) -> bool:
        try:
            from ran_core.engine.evaluate import EvaluationCancelled
        except ImportError:  # pragma: no cover - engine always ships with ran_core
            return False
        return isinstance(exc, EvaluationCancelled)
