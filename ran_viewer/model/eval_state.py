"""Qt-free state of the evaluation view and the subset browser.

Holds what the user chose (dataset, root, split, subset-list folder, the RAN and baseline models, whether to also
compute accuracy by head pose or by annotator agreement and the region deletion curves), what came back (one
:class:`ran_core.engine.evaluate.EvalResult` per model role, and the optional :class:`EvalAnalyses`), and what is
selected (the confusion matrix shown, its clicked cell, the subset-browser filter). Widgets take an
:class:`EvalState` in ``__init__`` and subscribe to its ``events``; tests drive it with plain pytest. Results are
duck-typed: anything with the ``EvalResult`` fields works."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ran_core.data import has_votes
from ran_viewer.model.events import Event

ROLES: tuple[str, ...] = ("ran", "baseline")


ROLE_LABELS: dict[str, str] = {"ran": "RAN", "baseline": "Baseline"}


MATRIX_SOURCES: tuple[str, ...] = ("ran", "baseline", "difference")


OVERALL = "overall"


SET_LABELS: dict[str, str] = {
    OVERALL: "Overall",
    "occlusion": "Occlusion",
    "pose30": "Pose > 30°",
    "pose45": "Pose > 45°",
}


OUTCOMES: tuple[str, ...] = ("all", "correct", "wrong")


DISAGREEMENTS: tuple[str, ...] = ("all", "disagree", "ran_wins", "baseline_wins")


DISAGREEMENT_LABELS: dict[str, str] = {
    "all": "Any agreement",
    "disagree": "Models disagree",
    "ran_wins": "RAN right, baseline wrong",
    "baseline_wins": "Baseline right, RAN wrong",
}


# Fallbacks for the form when ran_core.data cannot be imported (the viewer still opens; running then reports why).
DEFAULT_DATASETS: tuple[str, ...] = ("ferplus", "rafdb", "affectnet")


DEFAULT_SPLITS: tuple[str, ...] = ("valid", "test", "train")


RUN_STATUSES: tuple[str, ...] = ("idle", "running", "done", "cancelled", "error")


# The |yaw| bins of ``ran_core.engine.pose_bins`` (its keys) as the plots label them.
POSE_BIN_LABELS: dict[str, str] = {
    "<15": "< 15°",
    "15-30": "15–30°",
    "30-45": "30–45°",
    ">=45": "≥ 45°",
    "unknown": "unknown",
}


# The agreement bins of ``ran_core.engine.agreement`` (its keys) as the plots label them.
AGREEMENT_BIN_LABELS: dict[str, str] = {
    "50-60%": "> 50–60 %",
    "60-70%": "60–70 %",
    "70-80%": "70–80 %",
    "80-90%": "80–90 %",
    "90-100%": "90–100 %",
}
# The bins of faces that more than a fifth of the annotators read differently.
DISPUTED_BINS: frozenset[str] = frozenset({"50-60%", "60-70%", "70-80%"})


# The orders of ``ran_core.engine.deletion`` (its keys): RAN's are ranked by attention, the baseline's by sensitivity.
DELETION_ORDERS: tuple[str, ...] = ("by_weight", "reverse", "random")


DELETION_ORDER_LABELS: dict[str, dict[str, str]] = {
    "attention": {"by_weight": "most-weighted first", "reverse": "least-weighted first", "random": "random order"},
    "sensitivity": {"by_weight": "most-sensitive first", "reverse": "least-sensitive first", "random": "random order"},
}


def subset_label(name: str) -> str:
    """Human name of an evaluation set (``pose30`` -> ``Pose > 30°``)."""
    return SET_LABELS.get(name, name.replace("_", " ").capitalize())


class EvalEvents:
    """Change events of :class:`EvalState`. Each callback receives the new value(s) named in the comment."""

    def __init__(self) -> None:
        self.form = Event("form")  # () the dataset / root / split / lists folder / models changed
        self.status = Event("status")  # (status, message)
        self.progress = Event("progress")  # (done, total, stage)
        self.results = Event("results")  # (dict role -> EvalResult)
        self.view = Event("view")  # () matrix source, normalisation or matrix set changed
        self.cell = Event("cell")  # (tuple[int, int] | None)
        self.browser = Event("browser")  # (BrowserFilter)
        self.options = Event("options")  # () the "also compute" choices (pose bins, deletion curves) changed


@dataclass(frozen=True)
class EvalRequest:
    """Everything the worker needs to evaluate both models; built by :meth:`EvalState.make_request`.

    Attributes:
        dataset: a name from ``ran_core.data.DATASET_NAMES``.
        root: the dataset folder.
        split: which split to evaluate.
        lists_dir: folder with the RAN subset lists (occlusion / pose), or ``None`` for overall metrics only.
        models: role (``ran`` / ``baseline``) -> model name or path; at least one.
        batch_size: images per forward pass.
        max_samples: evaluate only the first N samples (``None`` = all), for quick looks.
        pose_bins: also compute accuracy by estimated |yaw| (``eval --pose-bins``; finds landmarks once, cached).
        agreement: also compute accuracy by how many annotators chose each label (``eval --by-agreement``; FERPlus).
        deletion: also compute the region deletion curves of every model (``eval --deletion``; about
            ``5 × (K − 1)`` evaluations' worth of forward passes).
        deletion_orders: random orders averaged for the deletion curve's ``random`` line.
        deletion_tta: test-time augmentation of the deletion curves' readings (``none``: one view each, as
            ``eval --deletion --tta none``; ``None`` reads with each model's saved one, two views for the bundled
            models, ten with ``flip_shift``).
        landmark_detector: the detector that finds the landmarks for the pose bins (``auto``: the best available).
    """

    dataset: str
    root: str
    split: str
    lists_dir: str | None
    models: dict[str, str]
    batch_size: int = 64
    max_samples: int | None = None
    pose_bins: bool = False
    agreement: bool = False
    deletion: bool = False
    deletion_orders: int = 3
    deletion_tta: str | None = "none"
    landmark_detector: str = "auto"


@dataclass(frozen=True)
class EvalAnalyses:
    """What a run computed beyond the confusion matrices, when the user asked for it.

    Attributes:
        pose_bins: role -> ``ran_core.engine.pose_bins.pose_bin_metrics`` (bin -> ``accuracy``, ``n``, ``mean_yaw``
            ...), in bin order; empty when not computed.
        agreement_bins: role -> ``ran_core.engine.agreement.agreement_bin_metrics`` (bin -> ``accuracy``, ``n``,
            ``errors`` ...), in bin order; empty when not computed.
        deletion: role -> ``ran_core.engine.deletion.DeletionResult`` (duck-typed: ``accuracy``, ``auc``,
            ``ranked_by``, ``region_names``, ``n``); empty when not computed.
        landmarks: where the pose bins' landmarks came from (the landmark report's summary line).
    """

    pose_bins: dict[str, dict[str, dict]] = field(default_factory=dict)
    deletion: dict[str, Any] = field(default_factory=dict)
    landmarks: str = ""
    agreement_bins: dict[str, dict[str, dict]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pose_bins or self.deletion or self.agreement_bins)


@dataclass(frozen=True)
class BrowserFilter:
    """What the subset browser shows.

    Attributes:
        subset: ``overall`` or a subset name (``occlusion``, ``pose30``, ``pose45``).
        true_class: index of the true class to keep, or ``None`` for all classes.
        outcome: ``all``, ``correct`` or ``wrong``, judged on ``judge``'s prediction.
        judge: the model role whose prediction ``outcome`` looks at.
        disagreement: ``all``, ``disagree`` (the two models predict differently), ``ran_wins`` or ``baseline_wins``.
    """

    subset: str = "occlusion"
    true_class: int | None = None
    outcome: str = "all"
    judge: str = "ran"
    disagreement: str = "all"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.judge not in ROLES:
            raise ValueError(f"judge must be one of {ROLES}, got {self.judge!r}")
        if self.disagreement not in DISAGREEMENTS:
            raise ValueError(f"disagreement must be one of {DISAGREEMENTS}, got {self.disagreement!r}")


@dataclass(frozen=True)
class GalleryItem:
    """One thumbnail: an image with its true label and each model's prediction.

    Attributes:
        index: position in the evaluated split.
        path: image file.
        key: the dataset's key of the sample.
        target: true class index.
        preds: role -> predicted class index (only the roles that were evaluated).
        class_names: names for the indices.
        confidence: role -> probability of the predicted class.
    """

    index: int
    path: str
    key: str
    target: int
    preds: dict[str, int]
    class_names: Sequence[str]
    confidence: dict[str, float] = field(default_factory=dict)

    @property
    def true_name(self) -> str:
        return self.class_names[self.target]

    def pred_name(self, role: str) -> str:
        p = self.preds.get(role, -1)
        return self.class_names[p] if 0 <= p < len(self.class_names) else "?"

    def correct(self, role: str) -> bool | None:
        """Whether ``role`` got it right (``None`` if that model was not evaluated)."""
        if role not in self.preds:
            return None
        return self.preds[role] == self.target

    @property
    def status(self) -> str:
        """``correct`` / ``wrong`` (every evaluated model right / wrong), else ``ran_wins`` or ``baseline_wins``."""
        verdicts = {r: self.correct(r) for r in ROLES if r in self.preds}
        if len(verdicts) == 2 and verdicts["ran"] != verdicts["baseline"]:
            return "ran_wins" if verdicts["ran"] else "baseline_wins"
        return "correct" if all(verdicts.values()) else "wrong"


@dataclass
class _Aligned:
    """Per-sample arrays of every evaluated role on the same sample order (the first role's)."""

    class_names: list[str]
    paths: list[str]
    keys: list[str]
    targets: np.ndarray
    preds: dict[str, np.ndarray]
    conf: dict[str, np.ndarray]
    sets: dict[str, np.ndarray]


class EvalState:
    """Choices, results and selections of the evaluation view and the subset browser (no Qt)."""

    def __init__(self) -> None:
        self.events = EvalEvents()
        self._dataset = DEFAULT_DATASETS[0]
        self._root = ""
        self._split = DEFAULT_SPLITS[0]
        self._lists_dir = ""
        self._models: dict[str, str] = {"ran": "", "baseline": ""}
        self.batch_size = 64
        self.max_samples: int | None = None
        self._pose_bins = False
        self._agreement = False
        self._deletion = False
        self._status = "idle"
        self._message = ""
        self._warnings: list[str] = []
        self._progress: tuple[int, int, str] = (0, 0, "")
        self._results: dict[str, Any] = {}
        self._analyses = EvalAnalyses()
        self._aligned: _Aligned | None = None
        self._matrix_source = "ran"
        self._normalize = False
        self._matrix_set = OVERALL
        self._cell: tuple[int, int] | None = None
        self._browser = BrowserFilter()

    # ---- the form -------------------------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return self._dataset

    @property
    def root(self) -> str:
        return self._root

    @property
    def split(self) -> str:
        return self._split

    @property
    def lists_dir(self) -> str:
        return self._lists_dir

    @property
    def models(self) -> dict[str, str]:
        return dict(self._models)

    def set_form(
        self,
        dataset: str | None = None,
        root: str | None = None,
        split: str | None = None,
        lists_dir: str | None = None,
    ) -> None:
        """Change any of the dataset fields; emits ``form`` once if anything changed."""
        new = (
            self._dataset if dataset is None else dataset.strip(),
            self._root if root is None else root.strip(),
            self._split if split is None else split.strip(),
            self._lists_dir if lists_dir is None else lists_dir.strip(),
        )
        if new != (self._dataset, self._root, self._split, self._lists_dir):
            self._dataset, self._root, self._split, self._lists_dir = new
            self.events.form.emit()

    def set_model(self, role: str, name_or_path: str) -> None:
        """Choose the model for ``role`` (``ran`` or ``baseline``); an empty string skips that role."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        name_or_path = name_or_path.strip()
        if self._models[role] != name_or_path:
            self._models[role] = name_or_path
            self.events.form.emit()

    @property
    def compute_pose_bins(self) -> bool:
        """Also compute accuracy by head pose in the next run."""
        return self._pose_bins

    @property
    def compute_agreement(self) -> bool:
        """Also compute accuracy by annotator agreement in the next run."""
        return self._agreement

    @property
    def agreement_available(self) -> bool:
        """Whether the chosen dataset gives the annotators' votes (FERPlus), which accuracy by agreement needs; for
        other datasets the option is kept but not asked of the worker."""
        return has_votes(self._dataset)

    @property
    def compute_deletion(self) -> bool:
        """Also compute the region deletion curves in the next run."""
        return self._deletion

    def set_options(
        self, pose_bins: bool | None = None, deletion: bool | None = None, agreement: bool | None = None
    ) -> None:
        """Choose what the next run computes beyond the confusion matrices; emits ``options`` if anything changed.

        All are off by default: the pose bins need landmarks found once per split (a face detector on every image
        the first time), the deletion curves cost many forward passes per image, and the agreement bins only exist
        for datasets with annotator votes (FERPlus).
        """
        new = (
            self._pose_bins if pose_bins is None else bool(pose_bins),
            self._deletion if deletion is None else bool(deletion),
            self._agreement if agreement is None else bool(agreement),
        )
        if new != (self._pose_bins, self._deletion, self._agreement):
            self._pose_bins, self._deletion, self._agreement = new
            self.events.options.emit()

    def validate(self) -> list[str]:
        """Problems with the form that can be seen without loading anything (empty list = ready to run)."""
        problems = []
        if not self._dataset:
            problems.append("Choose a dataset.")
        if not self._root:
            problems.append("Choose the dataset folder.")
        elif not Path(self._root).is_dir():
            problems.append(f"Dataset folder not found: {self._root}")
        if not self._split:
            problems.append("Choose a split.")
        if self._lists_dir:
            lists = Path(self._lists_dir)
            if not lists.is_dir():
                problems.append(f"Subset-list folder not found: {self._lists_dir}")
            else:
                try:
                    next(iter(lists.iterdir()), None)
                except OSError as exc:
                    problems.append(f"Subset-list folder cannot be read: {exc.strerror or exc}")
        if not any(self._models.values()):
            problems.append("Choose at least one model (RAN or baseline).")
        return problems

    def make_request(self) -> EvalRequest:
        """The worker's input for the current form.

        Raises:
            ValueError: the form is incomplete or names missing folders; the message lists every problem.
        """
        problems = self.validate()
        if problems:
            raise ValueError("\n".join(problems))
        return EvalRequest(
            dataset=self._dataset,
            root=self._root,
            split=self._split,
            lists_dir=self._lists_dir or None,
            models={r: m for r, m in self._models.items() if m},
            batch_size=self.batch_size,
            max_samples=self.max_samples,
            pose_bins=self._pose_bins,
            agreement=self._agreement and self.agreement_available,
            deletion=self._deletion,
        )

    # ---- the run --------------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._status

    @property
    def message(self) -> str:
        return self._message

    @property
    def progress(self) -> tuple[int, int, str]:
        return self._progress

    @property
    def warnings(self) -> list[str]:
        """Things the last run left out (skipped images, lists that matched nothing), for the user to read."""
        return list(self._warnings)

    def set_status(self, status: str, message: str = "", warnings: Sequence[str] = ()) -> None:
        """Record the run's status (``idle``, ``running``, ``done``, ``cancelled``, ``error``), a message for it and
        any warnings; emits ``status`` if anything changed."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        warnings = [str(w) for w in warnings]
        if (status, message, warnings) != (self._status, self._message, self._warnings):
            self._status, self._message, self._warnings = status, message, warnings
            self.events.status.emit(status, message)

    def set_progress(self, done: int, total: int, stage: str) -> None:
        self._progress = (int(done), int(total), str(stage))
        self.events.progress.emit(*self._progress)

    # ---- results --------------------------------------------------------------------------------------------
    @property
    def results(self) -> dict[str, Any]:
        return dict(self._results)

    @property
    def has_results(self) -> bool:
        return bool(self._results)

    @property
    def roles(self) -> list[str]:
        """Evaluated roles, in ``ROLES`` order."""
        return [r for r in ROLES if r in self._results]

    @property
    def class_names(self) -> list[str]:
        return list(self._aligned.class_names) if self._aligned else []

    @property
    def subset_names(self) -> list[str]:
        """``overall`` then every subset any model was evaluated on (paper order first)."""
        if not self._aligned:
            return []
        subs = [s for s in self._aligned.sets if s != OVERALL]
        order = list(SET_LABELS)
        subs.sort(key=lambda s: (order.index(s) if s in order else len(order), s))
        return [OVERALL, *subs]

    def set_results(self, results: dict[str, Any], analyses: EvalAnalyses | None = None) -> None:
        """Show new results (role -> ``EvalResult``) and, when computed, their pose bins and deletion curves; resets
        the cell selection, keeps view choices that still apply.

        Raises:
            ValueError: an unknown role, models whose class names differ, or analyses of a model not evaluated.
        """
        unknown = set(results) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown result roles {sorted(unknown)}; expected {ROLES}")
        results = {r: results[r] for r in ROLES if r in results and results[r] is not None}
        names = [list(res.class_names) for res in results.values()]
        if any(n != names[0] for n in names[1:]):
            raise ValueError(f"the models predict different classes: {names}; compare models of one dataset")
        analyses = analyses if analyses is not None else EvalAnalyses()
        stray = (set(analyses.pose_bins) | set(analyses.agreement_bins) | set(analyses.deletion)) - set(results)
        if stray:
            raise ValueError(f"binned accuracies or deletion curves of {sorted(stray)}, which were not evaluated")
        self._results = results
        self._analyses = analyses
        self._aligned = _align(results) if results else None
        if self._matrix_source not in self._available_sources():
            self._matrix_source = self._available_sources()[0] if results else "ran"
        if self._matrix_set not in self.subset_names:
            self._matrix_set = OVERALL
        if self._browser.subset not in self.subset_names and results:
            subs = [s for s in self.subset_names if s != OVERALL]
            self._browser = _replace(self._browser, subset=subs[0] if subs else OVERALL, true_class=None)
        if self._browser.judge not in self.roles and results:
            self._browser = _replace(self._browser, judge=self.roles[0])
        self._cell = None
        self.events.results.emit(self.results)
        self.events.view.emit()
        self.events.cell.emit(None)
        self.events.browser.emit(self._browser)

    def clear_results(self) -> None:
        self.set_results({})

    def accuracy_rows(self) -> list[dict[str, Any]]:
        """One row per set: ``set``, ``label``, ``n``, ``missing``, ``acc`` and ``mca`` (role -> percent), ``diff``.

        ``diff`` is RAN − baseline accuracy in points, ``None`` unless both were evaluated.
        """
        rows = []
        for name in self.subset_names:
            acc, mca, n, missing = {}, {}, None, None
            for role, res in self._results.items():
                m = res.overall if name == OVERALL else res.subsets.get(name)
                if m is None:
                    continue
                acc[role], mca[role] = float(m.accuracy), float(m.mean_class_accuracy)
                n = m.n if n is None else n
                missing = m.missing if missing is None else missing
            diff = acc["ran"] - acc["baseline"] if "ran" in acc and "baseline" in acc else None
            diff = None if diff is not None and diff != diff else diff  # an empty set has no accuracy
            rows.append(
                {
                    "set": name,
                    "label": subset_label(name),
                    "n": n,
                    "missing": missing,
                    "acc": acc,
                    "mca": mca,
                    "diff": diff,
                }
            )
        return rows

    # ---- pose bins and deletion curves ----------------------------------------------------------------------
    @property
    def analyses(self) -> EvalAnalyses:
        """The pose bins and deletion curves of the results shown (empty when the run did not compute them)."""
        return self._analyses

    def pose_bin_rows(self) -> list[dict[str, Any]]:
        """One row per |yaw| bin, in ``ran_core``'s order: ``bin``, ``label``, ``n`` (images in the bin),
        ``mean_yaw`` (degrees, ``None`` for ``unknown``), and ``acc`` (role -> percent, ``None`` for an empty bin).
        Empty when no pose bins were computed."""
        rows = _bin_rows(self._analyses.pose_bins, POSE_BIN_LABELS)
        for row, src in zip(rows, _first(self._analyses.pose_bins).values()):
            mean = src.get("mean_yaw")
            row["mean_yaw"] = None if mean is None else float(mean)
        return rows

    def agreement_bin_rows(self) -> list[dict[str, Any]]:
        """One row per annotator-agreement bin, in ``ran_core``'s order: ``bin``, ``label``, ``n`` (images in the
        bin), ``errors`` (role -> wrong answers) and ``acc`` (role -> percent, ``None`` for an empty bin). Empty when
        no agreement bins were computed."""
        rows = _bin_rows(self._analyses.agreement_bins, AGREEMENT_BIN_LABELS)
        per_role = {r: self._analyses.agreement_bins[r] for r in ROLES if r in self._analyses.agreement_bins}
        for row in rows:
            row["errors"] = {r: int(b.get(row["bin"], {}).get("errors", 0)) for r, b in per_role.items()}
        return rows

    def deletion_lines(self) -> list[dict[str, Any]]:
        """The deletion curves to draw, RAN's first: ``role``, ``order``, ``label`` (what the order means for that
        model), ``steps`` (regions covered, 0..K-1), ``accuracy`` (percent), ``auc`` and ``n``. Empty when no
        deletion curves were computed."""
        lines = []
        for role in ROLES:
            res = self._analyses.deletion.get(role)
            if res is None:
                continue
            names = DELETION_ORDER_LABELS.get(res.ranked_by, DELETION_ORDER_LABELS["attention"])
            auc = res.auc
            for order in DELETION_ORDERS:
                acc = res.accuracy.get(order)
                if acc is None:
                    continue
                lines.append(
                    {
                        "role": role,
                        "order": order,
                        "label": names.get(order, order),
                        "steps": list(range(len(acc))),
                        "accuracy": [float(v) for v in acc],
                        "auc": float(auc[order]),
                        "n": int(res.n),
                    }
                )
        return lines

    def empty_subsets(self) -> list[str]:
        """Subsets whose list matched no image of the evaluated split (e.g. test-split lists on the valid split)."""
        return [r["set"] for r in self.accuracy_rows() if r["set"] != OVERALL and not r["n"]]

    # ---- confusion matrix view ------------------------------------------------------------------------------
    @property
    def matrix_source(self) -> str:
        return self._matrix_source

    @property
    def normalize(self) -> bool:
        return self._normalize

    @property
    def matrix_set(self) -> str:
        return self._matrix_set

    def _available_sources(self) -> list[str]:
        roles = self.roles
        return roles + (["difference"] if len(roles) == 2 else [])

    @property
    def available_sources(self) -> list[str]:
        """Matrix sources that can be shown now (``difference`` needs both models)."""
        return self._available_sources()

    def set_view(self, source: str | None = None, normalize: bool | None = None, matrix_set: str | None = None) -> None:
        """Choose which confusion matrix is shown; emits ``view`` (and clears the cell) if anything changed.

        Raises:
            ValueError: an unknown source, or one whose results are not loaded.
        """
        new_source = self._matrix_source if source is None else source
        if new_source not in MATRIX_SOURCES:
            raise ValueError(f"source must be one of {MATRIX_SOURCES}, got {new_source!r}")
        if self._results and new_source not in self._available_sources():
            raise ValueError(f"no results for {new_source!r}; available: {self._available_sources()}")
        new_set = self._matrix_set if matrix_set is None else matrix_set
        if self._results and new_set not in self.subset_names:
            raise ValueError(f"unknown set {new_set!r}; available: {self.subset_names}")
        new_norm = self._normalize if normalize is None else bool(normalize)
        if (new_source, new_norm, new_set) == (self._matrix_source, self._normalize, self._matrix_set):
            return
        set_changed = new_set != self._matrix_set or new_source != self._matrix_source
        self._matrix_source, self._normalize, self._matrix_set = new_source, new_norm, new_set
        self.events.view.emit()
        if set_changed and self._cell is not None:
            # The same (true, predicted) cell of another matrix holds other images; keep the cell, refill the gallery.
            self.events.cell.emit(self._cell)

    def confusion(self, source: str | None = None, matrix_set: str | None = None, normalize: bool | None = None):
        """The ``(C, C)`` matrix to draw (rows = true, columns = predicted), or ``None`` without results.

        Counts are ints. Row-normalised values are percent of the row (``nan`` for empty rows). ``difference`` is
        RAN minus baseline, in counts or in row-percent points.
        """
        source = self._matrix_source if source is None else source
        matrix_set = self._matrix_set if matrix_set is None else matrix_set
        normalize = self._normalize if normalize is None else normalize
        if source == "difference":
            if not all(r in self._results for r in ROLES):
                return None
            a = self.confusion("ran", matrix_set, normalize)
            b = self.confusion("baseline", matrix_set, normalize)
            return None if a is None or b is None else a - b
        res = self._results.get(source)
        if res is None:
            return None
        m = res.overall if matrix_set == OVERALL else res.subsets.get(matrix_set)
        if m is None:
            return None
        cm = np.asarray(m.confusion, dtype=np.int64)
        if not normalize:
            return cm
        rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, 100.0 * cm / np.maximum(rows, 1), np.nan)

    # ---- selected cell and its images -----------------------------------------------------------------------
    @property
    def selected_cell(self) -> tuple[int, int] | None:
        return self._cell

    def select_cell(self, cell: tuple[int, int] | None) -> None:
        """Select the confusion cell ``(true, predicted)`` (``None`` clears it)."""
        if cell is not None:
            c = len(self.class_names)
            i, j = int(cell[0]), int(cell[1])
            if not (0 <= i < c and 0 <= j < c):
                raise ValueError(f"cell {cell} outside the {c}x{c} matrix")
            cell = (i, j)
        if cell != self._cell:
            self._cell = cell
            self.events.cell.emit(cell)

    def cell_indices(self) -> np.ndarray:
        """Sample indices in the selected cell of the shown matrix.

        For ``difference`` these are the images of true class ``row`` that exactly one of the two models put in
        column ``col``: the ones that make the cell's difference.
        """
        a = self._aligned
        if a is None or self._cell is None:
            return np.zeros(0, dtype=np.int64)
        i, j = self._cell
        idx = a.sets.get(self._matrix_set, np.zeros(0, dtype=np.int64))
        in_row = a.targets[idx] == i
        if self._matrix_source == "difference":
            keep = in_row & ((a.preds["ran"][idx] == j) != (a.preds["baseline"][idx] == j))
        else:
            keep = in_row & (a.preds[self._matrix_source][idx] == j)
        return idx[keep]

    def cell_items(self) -> list[GalleryItem]:
        """Gallery items for the selected cell."""
        return self.items(self.cell_indices())

    def items(self, indices: Sequence[int] | np.ndarray) -> list[GalleryItem]:
        """Gallery items for sample ``indices`` of the evaluated split."""
        a = self._aligned
        if a is None:
            return []
        out = []
        for k in np.asarray(indices, dtype=np.int64).tolist():
            preds = {r: int(p[k]) for r, p in a.preds.items() if p[k] >= 0}
            conf = {r: float(c[k]) for r, c in a.conf.items() if a.preds[r][k] >= 0}
            out.append(GalleryItem(k, a.paths[k], a.keys[k], int(a.targets[k]), preds, a.class_names, conf))
        return out

    # ---- subset browser -------------------------------------------------------------------------------------
    @property
    def browser_filter(self) -> BrowserFilter:
        return self._browser

    def set_browser_filter(self, **changes: Any) -> None:
        """Change fields of the :class:`BrowserFilter` (``subset``, ``true_class``, ``outcome``, ``judge``,
        ``disagreement``); emits ``browser`` if it changed.

        Raises:
            ValueError: an invalid value.
        """
        new = _replace(self._browser, **changes)
        if new.true_class is not None and self._aligned and not 0 <= new.true_class < len(self.class_names):
            raise ValueError(f"true_class {new.true_class} outside 0..{len(self.class_names) - 1}")
        if new != self._browser:
            self._browser = new
            self.events.browser.emit(new)

    def browser_indices(self) -> np.ndarray:
        """Sample indices that pass the browser filter, in split order."""
        a = self._aligned
        if a is None:
            return np.zeros(0, dtype=np.int64)
        f = self._browser
        idx = a.sets.get(f.subset)
        if idx is None:
            return np.zeros(0, dtype=np.int64)
        keep = np.ones(len(idx), dtype=bool)
        t = a.targets[idx]
        if f.true_class is not None:
            keep &= t == f.true_class
        if f.outcome != "all" and f.judge in a.preds:
            ok = a.preds[f.judge][idx] == t
            keep &= ok if f.outcome == "correct" else ~ok
        if f.disagreement != "all":
            if not all(r in a.preds for r in ROLES):
                return np.zeros(0, dtype=np.int64)
            pr, pb = a.preds["ran"][idx], a.preds["baseline"][idx]
            if f.disagreement == "disagree":
                keep &= pr != pb
            elif f.disagreement == "ran_wins":
                keep &= (pr == t) & (pb != t)
            else:
                keep &= (pb == t) & (pr != t)
        return idx[keep]

    def browser_items(self) -> list[GalleryItem]:
        return self.items(self.browser_indices())

    def subset_counts(self, subset: str) -> dict[str, int]:
        """How many images of ``subset`` each evaluated model got right, and how many the models disagree on."""
        a = self._aligned
        if a is None or subset not in a.sets:
            return {}
        idx = a.sets[subset]
        t = a.targets[idx]
        out = {"n": int(len(idx))}
        for r, p in a.preds.items():
            out[f"{r}_correct"] = int((p[idx] == t).sum())
        if all(r in a.preds for r in ROLES):
            out["disagree"] = int((a.preds["ran"][idx] != a.preds["baseline"][idx]).sum())
        return out


def _replace(f: BrowserFilter, **changes: Any) -> BrowserFilter:
    unknown = set(changes) - set(BrowserFilter.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown browser filter fields {sorted(unknown)}")
    return BrowserFilter(**{**f.__dict__, **changes})


def _align(results: dict[str, Any]) -> _Aligned:
    """Put every role's predictions on the first role's sample order (matched by key), -1 where a sample is absent."""
    first = next(iter(results.values()))
    keys = [str(k) for k in first.keys]
    pos = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    preds, conf = {}, {}
    for role, res in results.items():
        p = np.asarray(res.preds, dtype=np.int64)
        probs = np.asarray(res.probs, dtype=np.float64)
        c = probs[np.arange(len(p)), p] if probs.ndim == 2 and len(p) else np.zeros(len(p))
        if [str(k) for k in res.keys] == keys:
            preds[role], conf[role] = p, c
            continue
        pa, ca = np.full(n, -1, dtype=np.int64), np.zeros(n)
        for k, pk, ck in zip(res.keys, p, c):
            i = pos.get(str(k))
            if i is not None:
                pa[i], ca[i] = pk, ck
        preds[role], conf[role] = pa, ca
    sets = {OVERALL: np.arange(n, dtype=np.int64)}
    for res in results.values():
        for name, idx in (res.subset_indices or {}).items():
            if name in sets:
                continue
            idx = np.asarray(idx, dtype=np.int64)
            if res is not first:
                own_keys = [str(k) for k in res.keys]
                idx = np.array([pos[own_keys[i]] for i in idx if own_keys[i] in pos], dtype=np.int64)
            sets[name] = idx
    return _Aligned(
        class_names=list(first.class_names),
        paths=[str(p) for p in first.paths],
        keys=keys,
        targets=np.asarray(first.targets, dtype=np.int64),
        preds=preds,
        conf=conf,
        sets=sets,
    )


def _first(per_role: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """The bins of the first role (in :data:`ROLES` order) that has them, else ``{}``."""
    return next((per_role[r] for r in ROLES if r in per_role), {})


def _bin_rows(per_role_bins: dict[str, dict[str, dict]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """``bin``, ``label``, ``n`` and ``acc`` (role -> percent or ``None``) of every bin of per-role binned metrics,
    in the first role's bin order."""
    per_role = {r: per_role_bins[r] for r in ROLES if r in per_role_bins}
    rows = []
    for name, row in _first(per_role).items():
        acc = {
            r: (None if b.get(name, {}).get("accuracy") is None else float(b[name]["accuracy"]))
            for r, b in per_role.items()
        }
        rows.append({"bin": name, "label": labels.get(name, name), "n": int(row.get("n", 0)), "acc": acc})
    return rows
