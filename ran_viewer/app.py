"""``ran-viewer``: open images, folders or a camera and see where the Region Attention Network looks.

Examples::

    ran-viewer                                   # the bundled models on the bundled sample photos
    ran-viewer photos/ --model runs/ran/best     # a folder, with your own model
    ran-viewer --camera 0                        # live from the default webcam
    ran-viewer --camera 0 --camera-tta none      # 1 view a face instead of the saved 2: more frames per second
    ran-viewer face.jpg --occlude eyes --screenshot shot.png   # render one window to a PNG and exit
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ran_viewer._env import prepare_qt_environment, qt_platform_problem

prepare_qt_environment()  # before Qt is imported, even if the package __init__ was skipped

from ran_viewer.model.weights import WEIGHT_MODES  # noqa: E402

logger = logging.getLogger("ran_viewer")
MIN_SCREENSHOT_SIZE = (1280, 800)


def sample_images() -> list[Path]:
    """The bundled sample photos (empty when none are installed)."""
    from ran_core._paths import bundled_dir

    folder = bundled_dir() / "samples"
    if not folder.is_dir():
        return []
    from ran_core.imageio import IMAGE_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1600x1000, got {text!r}") from None
    return max(w, MIN_SCREENSHOT_SIZE[0]), max(h, MIN_SCREENSHOT_SIZE[1])


def build_parser() -> argparse.ArgumentParser:
    """The ``ran-viewer`` command-line parser."""
    p = argparse.ArgumentParser(
        prog="ran-viewer",
        description="Desktop viewer of Region Attention Networks: face regions coloured by attention, RAN beside the "
        "baseline, live camera and interactive occlusion.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGES_OR_DIR", help="images and/or folders (default: sample photos)")
    p.add_argument("--model", default="ran-ferplus", help="RAN model: bundled name or saved-model folder")
    p.add_argument(
        "--baseline", default="baseline-ferplus", help="baseline model to compare with ('none' to run RAN alone)"
    )
    p.add_argument("--camera", metavar="N", help="start live analysis from camera N (or a video file)")
    p.add_argument("--detector", default="auto", help="face detector: auto, fan, mtcnn or haar")
    p.add_argument(
        "--camera-tta",
        choices=("saved", "flip_shift", "flip", "none"),
        default="saved",
        help="views averaged per face on camera frames: the models' saved TTA (the bundled pair: flip, 2 views), 10 "
        "(flip_shift: slower) or 1 (none: about twice the frames per second, about 1 point less accurate on FERPlus "
        "Valid for RAN) (Camera > Live test-time augmentation)",
    )
    p.add_argument(
        "--faces",
        choices=("detect", "whole"),
        default="detect",
        help="detect faces in each image, or read each image as one already-cropped face (datasets, other crops)",
    )
    p.add_argument("--screenshot", metavar="PNG", help="analyse the first input, save the window as PNG and exit")
    p.add_argument("--size", type=_size, default=(1600, 1000), help="window size for --screenshot (WxH, min 1280x800)")
    p.add_argument("--weights", choices=WEIGHT_MODES, default="alpha*beta", help="weight that colours region boxes")
    p.add_argument("--occlude", choices=("eyes", "mouth"), help="put a bar over the eyes or a mask over the mouth")
    p.add_argument("--select-region", type=int, metavar="K", help="select region K of the first face")
    p.add_argument("--landmarks", action="store_true", help="show facial landmarks")
    p.add_argument("--no-compare", action="store_true", help="show RAN alone (no baseline view)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds --screenshot waits for the models")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the viewer; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    import importlib.util

    missing = [m for m in ("PySide6", "pyqtgraph") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"ran-viewer: the desktop app needs {' and '.join(missing)}, which this installation leaves out (the "
            "library and ran-core work without them). Install them with: pip install 'ran-fer[viewer]'",
            file=sys.stderr,
        )
        return 1

    problem = qt_platform_problem()
    if problem is not None:
        # Qt would abort the process with a message that does not say what to install: say it first. A missing
        # DISPLAY is certain to fail; a library the lookup misses may still be found by Qt, so that one only warns.
        print(f"ran-viewer: {problem.message}", file=sys.stderr)
        if problem.certain:
            return 1

    from PySide6.QtWidgets import QApplication

    from ran_viewer.widgets.common import apply_dark_theme
    from ran_viewer.widgets.main_window import QtMainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "ran-viewer"])
    app.setApplicationName("ran-viewer")
    app.setOrganizationName("ran-fer")
    apply_dark_theme(app)

    baseline = None if str(args.baseline).lower() in ("", "none") else args.baseline
    window = QtMainWindow(models=(args.model, baseline, args.detector), dialogs=args.screenshot is None)
    state = window.state
    state.weight_mode = args.weights
    state.show_landmarks = args.landmarks
    if args.faces == "whole":
        window.set_whole_faces(True)
    if args.camera_tta != "saved":
        window.set_camera_tta(args.camera_tta)
    state.compare = not args.no_compare and baseline is not None

    inputs = list(args.inputs)
    if not inputs and args.camera is None:
        inputs = [str(p) for p in sample_images()]
        if not inputs:
            state.notify("No sample photos are installed: open images with Ctrl+O.", "warning")
    if inputs:
        window.open_paths(inputs)

    if args.screenshot:
        return _screenshot(app, window, args)

    screen = app.primaryScreen().availableGeometry() if app.primaryScreen() else None
    if screen is not None:
        window.resize(min(1600, screen.width()), min(1000, screen.height()))
    window.show()
    if args.camera is not None:
        window.start_camera(int(args.camera) if str(args.camera).isdigit() else args.camera)
    try:
        return int(app.exec())
    finally:
        window.shutdown()


def _screenshot(app, window, args: argparse.Namespace) -> int:  # noqa: ANN001 - Qt objects
    from ran_viewer.model.occluders import eye_bar, mouth_mask

    state = window.state
    window.resize(*args.size)
    window.show()
    ok = window.wait_idle(args.timeout)
    if ok and args.occlude and state.faces:
        make = eye_bar if args.occlude == "eyes" else mouth_mask
        state.occlusion_tool = args.occlude
        for face in state.faces:
            state.add_occluder(make(face.box, face.landmarks))
        ok = window.wait_idle(args.timeout)
    if args.select_region is not None and state.faces:
        state.select(0, args.select_region)
    if not ok:
        logger.warning("the models did not finish within %.0f s; saving the window as it is", args.timeout)
    window.wait_idle(5.0)
    path = Path(args.screenshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = window.save_screenshot(path)
    window.shutdown()
    window.close()
    app.processEvents()
    if not saved:
        print(f"ran-viewer: could not write {path}", file=sys.stderr)
        return 1
    print(f"ran-viewer: screenshot saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
