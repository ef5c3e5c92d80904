"""The main window: RAN and baseline views side by side, side panels, thumbnails, camera, occlusion tools.

Layout and actions only: what to analyse and which results apply is decided by the Qt-free
:class:`~ran_viewer.model.controller.ViewerController`; the window wires the workers' signals to it and shows what it
announces (dialogs, timings, zooming onto new faces).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, QRectF, QStandardPaths, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSpinBox,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ran_core.imageio import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ran_viewer.model.controller import ViewerController
from ran_viewer.model.cover_by_weight import CoverByWeight
from ran_viewer.model.occluders import FILLS, TOOL_LABELS, TOOLS
from ran_viewer.model.timeline import ExpressionTimeline
from ran_viewer.model.viewer_state import CAMERA_TTA_CHOICES, ViewerState
from ran_viewer.model.weights import WEIGHT_LABELS, WEIGHT_MODES
from ran_viewer.services.camera import FrameSource, make_source
from ran_viewer.widgets.common import subscribe
from ran_viewer.widgets.cover_steps import QtCoverStepsWidget
from ran_viewer.widgets.image_view import QtImageView
from ran_viewer.widgets.probability_chart import QtProbabilityWidget
from ran_viewer.widgets.region_crops import QtRegionCropWidget
from ran_viewer.widgets.region_weights import QtRegionWeightWidget
from ran_viewer.widgets.thumbnail_strip import QtThumbnailStripWidget
from ran_viewer.widgets.timeline import QtTimelineWidget
from ran_viewer.workers.base import retire
from ran_viewer.workers.camera import CameraWorker, RunningCamera
from ran_viewer.workers.inference import InferenceWorker

logger = logging.getLogger(__name__)


TOOL_SHORT = {"none": "Select", "patch": "Patch", "eyes": "Eye bar", "mouth": "Mouth mask", "brush": "Brush"}


LEVEL_COLORS = {"info": "#dcdcdc", "warning": "#ffb347", "error": "#ff6b6b"}


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """A QImage (any format) -> ``(H, W, 3)`` uint8 RGB copy."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    return arr[:, : 3 * w].reshape(h, w, 3).copy()


class QtMainWindow(QMainWindow):
    """The ``ran-viewer`` window.

    Args:
        state: the state to show (a new one by default).
        worker: the inference worker (a new one by default; tests pass one with fake predictors). It is started here.
        camera_factory: makes a frame source from a camera index or video path (tests pass a fake camera).
        models: ``(ran, baseline, detector)`` to load at start, or ``None`` to keep the worker's predictors.
        dialogs: show non-modal dialogs for errors (off for ``--screenshot`` and tests).
    """

    sig_idle = Signal()

    def __init__(
        self,
        state: ViewerState | None = None,
        worker: InferenceWorker | None = None,
        camera_factory: Callable[[int | str], FrameSource] = make_source,
        models: tuple[Any, Any, str] | None = ("ran-ferplus", "baseline-ferplus", "auto"),
        dialogs: bool = True,
    ) -> None:
        super().__init__()
        self.state = state or ViewerState()
        self.worker = worker or InferenceWorker()
        self.camera_factory = camera_factory
        self.dialogs = dialogs
        self.controller = ViewerController(self.state, self.worker, self._camera_session)
        self.cover = CoverByWeight(self.controller)
        self.timeline = ExpressionTimeline(self.state)
        self._busy = False
        self._open_dialogs: list[QMessageBox] = []
        self.setWindowTitle("RAN viewer — region attention")
        self.setAcceptDrops(True)
        self.resize(1440, 900)

        self._build_views()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_statusbar()
        self._connect()
        self.worker.start()
        if models is not None:
            self.load_models(*models)
        else:
            self._on_models()
        self._on_display()
        self._on_weight_mode(self.state.weight_mode)
        self._on_tool_state()
        self.docks["thumbnails"].setVisible(len(self.state.sources) > 1)
        self.docks["timeline"].setVisible(False)  # shown when a camera starts: it plots camera frames
        self._dock_visible: dict[str, bool] = {}
        self._dock_hidden_for_tab: set[str] = set()
        self.tabs.currentChanged.connect(self._on_tab_changed)

    # --- construction ----------------------------------------------------------------------------------------------

    def _build_views(self) -> None:
        self.ran_view = QtImageView(self.state, "ran")
        self.base_view = QtImageView(self.state, "baseline")
        # One pan/zoom for both: the same pixels side by side.
        self.base_view.vb.setXLink(self.ran_view.vb)
        self.base_view.vb.setYLink(self.ran_view.vb)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.base_view)
        self.splitter.addWidget(self.ran_view)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.splitter, "Attention")
        self.eval_state: Any = None
        self.evaluation_widget: QWidget | None = None
        self.subset_widget: QWidget | None = None
        self._build_evaluation_tabs()
        self.setCentralWidget(self.tabs)

    def _build_evaluation_tabs(self) -> None:
        """Host the evaluation view and the subset browser; if they cannot load, a tab says why, and the viewer runs."""
        try:
            from ran_viewer.model.eval_state import EvalState
            from ran_viewer.widgets.evaluation import QtEvaluationWidget
            from ran_viewer.widgets.subsets import QtSubsetBrowserWidget

            self.eval_state = EvalState()
            self.evaluation_widget = QtEvaluationWidget(self.eval_state)
            self.subset_widget = QtSubsetBrowserWidget(self.eval_state)
        except Exception as exc:  # noqa: BLE001 - an optional panel must never stop the viewer
            self.eval_state = self.evaluation_widget = self.subset_widget = None
            holder = QWidget()
            lay = QVBoxLayout(holder)
            label = QLabel(f"The evaluation panels are not available in this installation.\n\n({exc})")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)
            lay.addWidget(label)
            self.tabs.addTab(holder, "Evaluation")
            return
        for widget, title in ((self.evaluation_widget, "Evaluation"), (self.subset_widget, "Subsets")):
            widget.sig_open_image.connect(self._on_open_image_request)
            # The tabs share one central widget: the evaluation page's minimum height (about 730 px) would keep the
            # Attention tab's bottom docks (the timeline) a strip. That page has the window's full height anyway:
            # the attention docks are hidden on it.
            widget.setMinimumHeight(240)
            self.tabs.addTab(widget, title)

    def _on_tab_changed(self, index: int) -> None:
        """The attention docks and tools belong to the Attention tab: hide them on the evaluation tabs."""
        attention = index == 0
        for key in ("probabilities", "weights", "crop", "thumbnails", "timeline"):
            dock = self.docks[key]
            if attention:
                dock.setVisible(self._dock_visible.get(key, dock.isVisible()))
            elif key not in self._dock_hidden_for_tab:
                self._dock_visible[key] = dock.isVisible()
                dock.setVisible(False)
        self._dock_hidden_for_tab = set() if attention else set(self.docks)
        self.occlusion_toolbar.setEnabled(attention)

    def _build_docks(self) -> None:
        self.prob_widget = QtProbabilityWidget(self.state)
        self.weight_widget = QtRegionWeightWidget(self.state)
        self.crop_widget = QtRegionCropWidget(self.state)
        self.thumb_widget = QtThumbnailStripWidget(self.state)
        self.timeline_widget = QtTimelineWidget(self.timeline, self.state)
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
            ("probabilities", "Probabilities", self.prob_widget, Qt.DockWidgetArea.RightDockWidgetArea),
            ("weights", "Region weights", self.weight_widget, Qt.DockWidgetArea.RightDockWidgetArea),
            ("crop", "Region crop", self.crop_widget, Qt.DockWidgetArea.RightDockWidgetArea),
            ("thumbnails", "Images", self.thumb_widget, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("timeline", "Expression over time", self.timeline_widget, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        # The side panels keep the full height; the bottom docks (thumbnails, the timeline) sit under the views.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        no_title = QWidget()
        no_title.setLayout(QVBoxLayout())
        no_title.layout().setContentsMargins(0, 0, 0, 0)
        self.docks["thumbnails"].setTitleBarWidget(no_title)  # the strip needs no title bar
        self.resizeDocks([self.docks["probabilities"]], [470], Qt.Orientation.Horizontal)
        self.resizeDocks(
            [self.docks["probabilities"], self.docks["weights"], self.docks["crop"]],
            [360, 250, 290],
            Qt.Orientation.Vertical,
        )

    def _action(
        self,
        text: str,
        slot: Callable[..., Any],
        shortcut: QKeySequence | str | None = None,
        icon: Any = None,
        checkable: bool = False,
        tip: str = "",
    ) -> QAction:
        act = QAction(text, self)
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        if tip or shortcut is not None:
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{tip or text.replace('&', '').rstrip('…')}" + (f" ({keys})" if keys else ""))
        act.triggered.connect(slot)
        self.addAction(act)  # shortcuts work even when menus and toolbars are hidden
        return act

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_open = self._action(
            "&Open images…", self.open_files_dialog, QKeySequence.StandardKey.Open, sp.SP_DialogOpenButton
        )
        self.act_open_folder = self._action("Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O", sp.SP_DirOpenIcon)
        self.act_paste = self._action(
            "&Paste image",
            self.paste,
            QKeySequence.StandardKey.Paste,
            tip="Paste an image or file paths from the clipboard",
        )
        self.act_save = self._action("&Save screenshot…", self.save_screenshot_dialog, "Ctrl+S", sp.SP_DialogSaveButton)
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_prev = self._action("&Previous image", self.previous_image, Qt.Key.Key_Left, sp.SP_ArrowBack)
        self.act_next = self._action("&Next image", self.next_image, Qt.Key.Key_Right, sp.SP_ArrowForward)
        self.act_first = self._action("First image", lambda: self.state.go_to(0), Qt.Key.Key_Home)
        self.act_last = self._action(
            "Last image", lambda: self.state.go_to(len(self.state.sources) - 1), Qt.Key.Key_End
        )
        self.act_load_ran = self._action("Load &RAN model…", lambda: self.load_model_dialog("ran"))
        self.act_load_base = self._action("Load &baseline model…", lambda: self.load_model_dialog("baseline"))
        self.act_compare = self._action("Side by side with &baseline", self._on_compare_toggled, "B", checkable=True)
        self.act_landmarks = self._action("Show &landmarks", self._on_landmarks_toggled, "L", checkable=True)
        self.act_whole_faces = self._action(
            "Images are &cropped faces",
            self._on_whole_faces_toggled,
            checkable=True,
            tip="Read each still image as one face (datasets, crops from other tools) instead of searching for faces",
        )
        self.act_fit = self._action("&Fit image", self.fit_view, "F", sp.SP_TitleBarMaxButton)
        self.act_zoom_faces = self._action("&Zoom to faces", self.zoom_to_faces, "Z")
        self.act_cycle_weight = self._action("Next &weight (α, β, α·β)", self.cycle_weight_mode, "W")
        self.act_camera = self._action("Start &camera", self.toggle_camera, "Ctrl+K", sp.SP_MediaPlay, checkable=True)
        self.act_pause = self._action(
            "&Pause camera", self.toggle_pause, Qt.Key.Key_Space, sp.SP_MediaPause, checkable=True
        )
        self.act_snapshot = self._action("Camera &snapshot", self.snapshot, "Ctrl+Shift+S", sp.SP_DialogSaveButton)
        self.act_choose_camera = self._action(
            "C&hoose camera…", self.choose_camera_dialog, tip="Start another camera (0 is the system's default one)"
        )
        self.act_video_camera = self._action(
            "Play a &video file as the camera…",
            self.open_video_dialog,
            tip="Run the live path on a recorded video: same tracking, FPS and occluders as a webcam",
        )
        self.act_undo = self._action("&Undo occluder", self.state.undo_occluder, QKeySequence.StandardKey.Undo)
        self.act_clear = self._action(
            "&Clear occluders", self.state.clear_occluders, "Ctrl+Shift+Z", sp.SP_DialogResetButton
        )
        self.act_about = self._action("&About", self.about)
        self.act_shortcuts = self._action(
            "&Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents
        )
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for n, tool in enumerate(TOOLS):
            act = self._action(
                TOOL_SHORT[tool],
                lambda _=False, t=tool: self.set_tool(t),
                str(n) if n else "Esc",
                checkable=True,
                tip=TOOL_LABELS[tool],
            )
            self.tool_group.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions["none"].setChecked(True)
        self.camera_tta_group = QActionGroup(self)
        self.camera_tta_actions: dict[str | None, QAction] = {}
        for tta, label in CAMERA_TTA_CHOICES.items():
            act = self._action(
                label,
                lambda _=False, t=tta: self.set_camera_tta(t),
                checkable=True,
                tip="Views of each face averaged on camera frames: more read a face better, fewer give more frames "
                "per second (still images keep the models' saved setting)",
            )
            self.camera_tta_group.addAction(act)
            self.camera_tta_actions[tta] = act
        self.camera_tta_actions[None].setChecked(True)
        self.cover_widget = QtCoverStepsWidget(self.cover)
        for act in self.cover_widget.actions_for_menu:
            self.addAction(act)  # shortcuts work even when the toolbar is hidden

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_open, self.act_open_folder, self.act_paste, None, self.act_save, None, self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&View")
        for a in (
            self.act_prev,
            self.act_next,
            self.act_first,
            self.act_last,
            None,
            self.act_compare,
            self.act_landmarks,
            self.act_fit,
            self.act_cycle_weight,
            None,
        ):
            m.addSeparator() if a is None else m.addAction(a)
        for dock in self.docks.values():
            m.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Models")
        m.addAction(self.act_load_ran)
        m.addAction(self.act_load_base)
        m.addSeparator()
        m.addAction(self.act_whole_faces)
        m = mb.addMenu("&Camera")
        for a in (
            self.act_camera,
            self.act_pause,
            self.act_snapshot,
            None,
            self.act_choose_camera,
            self.act_video_camera,
        ):
            m.addSeparator() if a is None else m.addAction(a)
        tta_menu = m.addMenu("Live &test-time augmentation")
        for a in self.camera_tta_actions.values():
            tta_menu.addAction(a)
        m = mb.addMenu("&Occlusion")
        for a in self.tool_actions.values():
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_undo)
        m.addAction(self.act_clear)
        m.addSeparator()
        for a in self.cover_widget.actions_for_menu:
            m.addAction(a)
        m = mb.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addAction(self.act_about)

    def _build_toolbars(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        for a in (self.act_open, self.act_open_folder, None, self.act_prev, self.act_next, None):
            tb.addSeparator() if a is None else tb.addAction(a)
        tb.addWidget(QLabel(" Colour by "))
        self.weight_combo = QComboBox()
        for mode in WEIGHT_MODES:
            self.weight_combo.addItem(WEIGHT_LABELS[mode], mode)
        self.weight_combo.setToolTip("Which attention weight colours the region boxes (W cycles)")
        self.weight_combo.currentIndexChanged.connect(self._on_weight_combo)
        tb.addWidget(self.weight_combo)
        tb.addSeparator()
        self.act_compare.setText("Compare")
        tb.addAction(self.act_compare)
        self.act_landmarks.setText("Landmarks")
        tb.addAction(self.act_landmarks)
        tb.addSeparator()
        for a in (self.act_camera, self.act_pause, self.act_snapshot):
            tb.addAction(a)

        ot = QToolBar("Occlusion")
        self.occlusion_toolbar = ot
        ot.setObjectName("toolbar_occlusion")
        ot.setMovable(False)
        ot.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBarBreak()
        self.addToolBar(ot)
        ot.addWidget(QLabel(" Occlude: "))
        for a in self.tool_actions.values():
            ot.addAction(a)
        ot.addWidget(QLabel("  fill "))
        self.fill_combo = QComboBox()
        self.fill_combo.addItems(list(FILLS))
        self.fill_combo.setToolTip("How occluded pixels are filled")
        self.fill_combo.currentTextChanged.connect(self._on_fill_combo)
        ot.addWidget(self.fill_combo)
        ot.addWidget(QLabel("  brush "))
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 200)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setValue(self.state.brush_radius)
        self.brush_spin.setToolTip("Brush radius in image pixels")
        self.brush_spin.valueChanged.connect(self._on_brush_spin)
        ot.addWidget(self.brush_spin)
        ot.addSeparator()
        ot.addAction(self.act_undo)
        ot.addAction(self.act_clear)
        ot.addSeparator()
        ot.addWidget(self.cover_widget)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.message_label = QLabel("")
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        sb.addWidget(self.message_label, 1)
        self.timing_label = QLabel("")
        self.fps_label = QLabel("")
        self.models_label = QLabel("")
        for w in (self.timing_label, self.fps_label, self.models_label):
            sb.addPermanentWidget(w)

    def _connect(self) -> None:
        ev = self.state.events
        subscribe(
            self,
            [
                (ev.sources, self._on_sources),
                (ev.display, self._on_display),
                (ev.weight_mode, self._on_weight_mode),
                (ev.models, self._on_models),
                (ev.camera, self._on_camera_state),
                (ev.message, self._on_message),
                (ev.occlusion_tool, self._on_tool_state),
            ],
        )
        c = self.controller
        subscribe(
            self,
            [
                (c.events.image_result, lambda _a: self.zoom_to_faces(only_if_small=True)),
                (c.events.timing, lambda s: self.timing_label.setText(f"{s * 1000:.0f} ms")),
                (c.events.models_pending, lambda _p: self._on_models()),
                (c.events.problem, self._dialog),
                (c.events.camera_session, self._on_camera_session),
            ],
        )
        self.timeline_widget.sig_seek.connect(c.seek_camera)
        w = self.worker
        w.sig_models_loaded.connect(c.on_models_loaded)
        w.sig_image_loaded.connect(c.on_image_loaded)
        w.sig_result_ready.connect(self._on_result_ready)
        w.sig_error.connect(c.on_error)
        w.sig_busy.connect(self._on_busy)
        w.sig_stats.connect(c.on_inference_stats)
        self._on_camera_state()

    # --- opening images --------------------------------------------------------------------------------------------

    def open_paths(self, paths: list[str | Path]) -> int:
        """Browse these files and folders; returns how many images were found."""
        return self.controller.open_paths(paths)

    def open_files_dialog(self) -> None:
        """Ask for image files and open them."""
        exts = " ".join(f"*{e}" for e in IMAGE_EXTENSIONS)
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", f"Images ({exts});;All files (*)")
        if files:
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        """Ask for a folder and browse its images."""
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_paths([folder])

    def open_array(self, rgb: np.ndarray, name: str) -> None:
        """Analyse an in-memory image (clipboard, drop of image data)."""
        self.controller.open_array(rgb, name)

    def paste(self) -> None:
        """Paste an image, or image file paths, from the clipboard."""
        md = QGuiApplication.clipboard().mimeData()
        if md is not None and md.hasImage():
            img = QGuiApplication.clipboard().image()
            if not img.isNull():
                self.open_array(qimage_to_rgb(img), "clipboard")
                return
        if md is not None and md.hasUrls():
            paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if paths:
                self.open_paths(paths)
                return
        if md is not None and md.hasText():
            lines = [ln.strip().strip('"') for ln in md.text().splitlines() if ln.strip()]
            if lines and all(Path(ln).expanduser().exists() for ln in lines):
                self.open_paths(lines)
                return
        self.state.notify("The clipboard holds no image and no image paths.", "warning")

    def next_image(self) -> None:
        """Show the next image of the list."""
        self.controller.next_image()

    def previous_image(self) -> None:
        """Show the previous image of the list."""
        self.controller.previous_image()

    def _on_sources(self) -> None:
        self._dock_visible["thumbnails"] = len(self.state.sources) > 1
        if self.tabs.currentIndex() == 0:
            self.docks["thumbnails"].setVisible(self._dock_visible["thumbnails"])

    def _on_open_image_request(self, path: str) -> None:
        """An evaluation panel asked to show one image: open it here, among its siblings when it has any."""
        self.tabs.setCurrentIndex(0)
        self.open_paths([path])

    # --- worker results --------------------------------------------------------------------------------------------

    def load_models(self, ran: Any, baseline: Any, detector: str = "auto") -> None:
        """Load models on the worker thread; the current image is re-analysed when they are ready."""
        if self.eval_state is not None:  # the evaluation tabs evaluate the same models
            for role, spec in (("ran", ran), ("baseline", baseline)):
                if isinstance(spec, (str, Path)):
                    self.eval_state.set_model(role, str(spec or ""))
        self.controller.load_models(ran, baseline, detector)

    def set_whole_faces(self, whole: bool) -> None:
        """Read still images as single cropped faces (True) or detect faces in them (False); re-reads the image."""
        self.act_whole_faces.setChecked(whole)
        self.controller.set_whole_faces(whole)

    def _on_whole_faces_toggled(self, checked: bool) -> None:
        self.set_whole_faces(bool(checked))
        what = "each image is read as one cropped face" if checked else "faces are detected in each image"
        self.state.notify(f"Still images: {what}.")

    def _on_result_ready(self) -> None:
        analysis = self.worker.take_result()
        if analysis is not None:
            self.controller.on_result(analysis)

    def _on_busy(self, busy: bool) -> None:
        self._busy = busy
        self.state.events.busy.emit(busy)
        if not busy:
            self.sig_idle.emit()

    def is_idle(self) -> bool:
        """No request or model load is queued or running, and thumbnails are loaded."""
        return not (self._busy or self.worker.pending or self.controller.models_pending or self.thumb_widget.loading)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Process events until :meth:`is_idle` (for ``--screenshot`` and tests); returns False on timeout."""
        deadline = time.monotonic() + timeout
        loop = QEventLoop()
        while time.monotonic() < deadline:
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if self.is_idle():
                for _ in range(3):  # let queued signals land and the views lay out their labels
                    loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
                if self.is_idle():
                    return True
            time.sleep(0.005)
        return False

    # --- occlusion -------------------------------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """Choose the occlusion tool (``none`` selects and pans)."""
        self.state.occlusion_tool = tool

    def _on_tool_state(self) -> None:
        act = self.tool_actions.get(self.state.occlusion_tool)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        if self.fill_combo.currentText() != self.state.occluder_fill:
            self.fill_combo.setCurrentText(self.state.occluder_fill)
        if self.brush_spin.value() != self.state.brush_radius:
            self.brush_spin.setValue(self.state.brush_radius)
        tool = self.state.occlusion_tool
        if tool != "none":
            self.state.notify(f"Occlusion: {TOOL_LABELS[tool]}. Right-drag pans, wheel zooms; Esc returns to select.")

    def _on_fill_combo(self, fill: str) -> None:
        self.state.occluder_fill = fill

    def _on_brush_spin(self, value: int) -> None:
        self.state.brush_radius = value

    # --- camera ----------------------------------------------------------------------------------------------------

    def toggle_camera(self) -> None:
        """Start or stop the camera."""
        self.controller.toggle_camera()

    def start_camera(self, source: int | str | None = None) -> None:
        """Start live analysis from a camera index or a video file (default: the state's camera source)."""
        self.controller.start_camera(source)

    def _camera_session(self, spec: int | str) -> RunningCamera:
        c = self.controller
        worker = CameraWorker(lambda: self.camera_factory(spec), self.worker.submit_frame)
        return RunningCamera(
            worker,
            opened=c.on_camera_opened,
            error=c.on_camera_error,
            stats=c.on_camera_stats,
            ended=c.on_camera_ended,
            source=c.on_camera_source,
        )

    @property
    def camera_worker(self) -> CameraWorker | None:
        """The running camera thread, or ``None``."""
        camera = self.controller.camera
        return camera.worker if isinstance(camera, RunningCamera) else None

    def _on_camera_session(self) -> None:
        """A camera started: show the timeline of the selected face (on the Attention tab)."""
        if self.state.camera.running:
            dock = self.docks["timeline"]
            if self.tabs.currentIndex() != 0:
                self._dock_visible["timeline"] = True
            elif not dock.isVisible():
                dock.setVisible(True)
                self.resizeDocks([dock], [max(260, self.height() // 3)], Qt.Orientation.Vertical)

    def choose_camera_dialog(self) -> None:
        """Ask for a camera index and start it."""
        current = self.state.camera.source
        index, ok = QInputDialog.getInt(
            self,
            "Choose camera",
            "Camera index (0 is the default camera; external cameras usually come next):",
            int(current) if str(current).isdigit() else 0,
            0,
            63,
        )
        if ok:
            self.start_camera(index)

    def open_video_dialog(self) -> None:
        """Ask for a video file and play it through the live camera path."""
        exts = " ".join(f"*{e}" for e in VIDEO_EXTENSIONS)
        path, _ = QFileDialog.getOpenFileName(self, "Play a video file", "", f"Videos ({exts});;All files (*)")
        if path:
            self.start_camera(path)

    def set_camera_tta(self, tta: str | None) -> None:
        """Views averaged per face on camera frames: ``None`` (the models' saved TTA), ``flip_shift``, ``flip`` or
        ``none``."""
        self.controller.set_camera_tta(tta)

    def stop_camera(self) -> None:
        """Stop live analysis (stops, waits for and disconnects the camera thread)."""
        self.controller.stop_camera()

    def toggle_pause(self) -> None:
        """Pause or resume the camera (Space)."""
        self.act_pause.setChecked(self.controller.toggle_pause())

    def snapshot(self) -> Path | None:
        """Save the frame on screen (as analysed, occluders included) as a PNG; returns the file."""
        img = self.state.display_image
        if img is None:
            self.state.notify("Nothing to save yet.", "warning")
            return None
        folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation) or Path.home())
        folder = folder / "ran-viewer"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / time.strftime("snapshot-%Y%m%d-%H%M%S.png")
            from PIL import Image

            Image.fromarray(img).save(path)
        except OSError as exc:
            self.state.notify(f"Snapshot not saved: {exc}", "error")
            return None
        self.state.notify(f"Snapshot saved: {path}")
        return path

    def _on_camera_state(self) -> None:
        cam = self.state.camera
        self.act_camera.setChecked(cam.running)
        self.act_camera.setText("Stop camera" if cam.running else "Start camera")
        self.act_pause.setEnabled(cam.running)
        self.act_pause.setChecked(cam.paused)
        self.act_snapshot.setEnabled(cam.running)
        self.camera_tta_actions[cam.tta].setChecked(True)
        if cam.running:
            self.fps_label.setText(
                f"camera {cam.capture_fps:4.1f} fps · analysed {cam.analysed_fps:4.1f} fps · dropped {cam.dropped}"
                + (" · paused" if cam.paused else "")
            )
        else:
            self.fps_label.setText("")

    # --- display ---------------------------------------------------------------------------------------------------

    def _on_display(self) -> None:
        self.act_compare.setChecked(self.state.compare)
        self.act_landmarks.setChecked(self.state.show_landmarks)
        self.base_view.setVisible(self.state.compare)

    def _on_compare_toggled(self, checked: bool) -> None:
        self.state.compare = checked

    def _on_landmarks_toggled(self, checked: bool) -> None:
        self.state.show_landmarks = checked

    def _on_weight_combo(self, index: int) -> None:
        self.state.weight_mode = self.weight_combo.itemData(index)

    def _on_weight_mode(self, mode: str) -> None:
        idx = self.weight_combo.findData(mode)
        if idx != self.weight_combo.currentIndex():
            self.weight_combo.setCurrentIndex(idx)

    def cycle_weight_mode(self) -> None:
        """Colour regions by the next weight: α, β, α·β."""
        modes = list(WEIGHT_MODES)
        self.state.weight_mode = modes[(modes.index(self.state.weight_mode) + 1) % len(modes)]

    def fit_view(self) -> None:
        """Show the whole image."""
        img = self.state.image
        if img is not None:
            self.ran_view.vb.setRange(QRectF(0, 0, img.shape[1], img.shape[0]), padding=0.02)

    def zoom_to_faces(self, only_if_small: bool = False) -> None:
        """Zoom both views onto the faces (with room around them), so the region boxes and their labels are legible.

        Args:
            only_if_small: do nothing when the faces already fill most of the image.
        """
        img, faces = self.state.image, self.state.faces
        if img is None or not faces:
            return
        h, w = img.shape[:2]
        boxes = np.array([f.box for f in faces], dtype=float)
        x1, y1 = boxes[:, 0].min(), boxes[:, 1].min()
        x2, y2 = boxes[:, 2].max(), boxes[:, 3].max()
        pad = 0.45 * max(x2 - x1, y2 - y1)
        x1, y1, x2, y2 = max(0.0, x1 - pad), max(0.0, y1 - pad), min(float(w), x2 + pad), min(float(h), y2 + pad)
        if only_if_small and (x2 - x1) * (y2 - y1) > 0.6 * w * h:
            return
        self.ran_view.vb.setRange(QRectF(x1, y1, x2 - x1, y2 - y1), padding=0)

    def _on_models(self) -> None:
        s = self.state
        parts = [f"RAN: {s.ran_model_name or '—'}", f"baseline: {s.baseline_model_name or '—'}"]
        if self.controller.detector_name:
            parts.append(f"faces: {self.controller.detector_name}")
        self.models_label.setText(" · ".join(parts) if not self.controller.models_pending else "loading models…")

    def load_model_dialog(self, which: str) -> None:
        """Ask for a saved model folder and load it as the RAN or the baseline model."""
        path = QFileDialog.getExistingDirectory(
            self, f"Choose a saved {which} model folder (model.safetensors + config.json)"
        )
        if not path:
            return
        ran, base, det = self.controller.models or ("", "", "auto")
        if which == "ran":
            ran = path
        else:
            base = path
        self.load_models(ran, base, det)

    # --- messages and dialogs --------------------------------------------------------------------------------------

    def _on_message(self, text: str, level: str) -> None:
        self.message_label.setText(text)
        self.message_label.setToolTip(text)
        self.message_label.setStyleSheet(f"color: {LEVEL_COLORS.get(level, LEVEL_COLORS['info'])}")
        log = {"error": logger.error, "warning": logger.warning}.get(level, logger.info)
        log(text)

    def _dialog(self, title: str, text: str) -> None:
        """A non-modal warning: the app keeps running behind it."""
        if not self.dialogs:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda *_: self._open_dialogs.remove(box) if box in self._open_dialogs else None)
        self._open_dialogs.append(box)
        box.show()

    def about(self) -> None:
        """Show what the viewer shows."""
        QMessageBox.about(
            self,
            "About RAN viewer",
            "<b>RAN viewer</b><br>Region Attention Networks for pose- and occlusion-robust facial expression "
            "recognition (Wang et al., IEEE TIP 2020).<br><br>Region boxes are coloured by their attention weight "
            "(viridis): α is the self-attention weight, β the relation-attention weight, α·β each region's share of "
            "the final face representation.",
        )

    def show_shortcuts(self) -> None:
        """List every keyboard shortcut."""
        rows = []
        for act in self.actions():
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if keys:
                rows.append(f"<tr><td><b>{keys}</b></td><td>&nbsp;{act.text().replace('&', '')}</td></tr>")
        QMessageBox.information(self, "Keyboard shortcuts", "<table>" + "".join(rows) + "</table>")

    # --- screenshots, drag and drop, closing -----------------------------------------------------------------------

    def save_screenshot(self, path: str | Path) -> bool:
        """Render the whole window to a PNG."""
        return self.grab().save(str(path))

    def save_screenshot_dialog(self) -> None:
        """Ask for a file and save the window as PNG."""
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "ran-viewer.png", "PNG (*.png)")
        if path:
            ok = self.save_screenshot(path)
            self.state.notify(
                f"Screenshot saved: {path}" if ok else f"Could not write {path}", "info" if ok else "error"
            )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        """Accept dropped files, folders and image data."""
        md = event.mimeData()
        if md.hasUrls() or md.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        """Open what was dropped."""
        md = event.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        if paths:
            self.open_paths(paths)
        elif md.hasImage():
            img = QImage(md.imageData())
            if not img.isNull():
                self.open_array(qimage_to_rgb(img), "dropped image")
        event.acceptProposedAction()

    def shutdown(self) -> None:
        """Stop every worker thread (idempotent)."""
        self.stop_camera()
        self.thumb_widget.shutdown()
        for widget in (self.evaluation_widget, self.subset_widget):
            if widget is not None:
                widget.close()  # their closeEvent stops their workers
        retire(self.worker)
        for box in list(self._open_dialogs):
            box.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        """Stop every worker thread before the window goes."""
        self.shutdown()
        super().closeEvent(event)
