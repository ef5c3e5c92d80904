"""FERPlus packed into one compressed file, and unpacked back into Microsoft's layout.

A machine that receives only a copy of the repository (the GPU machine of ``scripts/gpu_ran_resnet18.sh``, 64 MiB in
all) cannot read ``../shared/data``. ``pack`` writes the 48 px faces of the chosen splits as **one uint8 array**
``(N, H, W)``, delta-coded (each pixel minus its left neighbour, then minus the row above: natural images compress
to about 75 % of the plain array) and deflated with ``numpy.savez_compressed``, together with each split's
``label.csv`` byte for byte. ``unpack`` writes the same layout back (``FER2013Train/label.csv``, ``fer0000000.png``
...), so every reader, cache and subset list works on it unchanged. FERPlus Train + Valid pack into about 52 MiB.

The pack holds no pickled objects: it loads with ``allow_pickle=False``.

Command line::

    python -m ran_core.data.pack pack ../shared/data/ferplus packs/ferplus48.npz [--splits train valid]
    python -m ran_core.data.pack unpack packs/ferplus48.npz /tmp/ferplus
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ran_core.data.base import SkipReport
from ran_core.data.ferplus import LABEL_FILE, SPLIT_FOLDERS, _parse_row

logger = logging.getLogger(__name__)

PACK_FORMAT = "ran-core ferplus pack"
PACK_VERSION = 1


@dataclass
class PackReport:
    """What :func:`pack_ferplus` / :func:`unpack_ferplus` did, per split."""

    path: Path
    images: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, SkipReport] = field(default_factory=dict)
    size_bytes: int = 0

    def summary(self) -> str:
        parts = [f"{split} {n:,} images" for split, n in self.images.items()]
        text = f"{self.path}: {', '.join(parts) or 'no images'}"
        if self.size_bytes:
            text += f" ({self.size_bytes / 2**20:.1f} MiB)"
        for split, report in self.skipped.items():
            if report.total:
                text += f"\n  {split}: {report.summary()}"
        return text


def delta_encode(images: np.ndarray) -> np.ndarray:
    """Each pixel minus its left neighbour, then each row minus the row above, modulo 256 (reversible)."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected a (N, H, W) uint8 array, got {images.dtype} {images.shape}")
    d = images.copy()
    d[:, :, 1:] = images[:, :, 1:] - images[:, :, :-1]  # uint8 arithmetic wraps modulo 256
    out = d.copy()
    out[:, 1:, :] = d[:, 1:, :] - d[:, :-1, :]
    return out


def delta_decode(residuals: np.ndarray) -> np.ndarray:
    """The inverse of :func:`delta_encode`."""
    return np.cumsum(np.cumsum(residuals, axis=1, dtype=np.uint8), axis=2, dtype=np.uint8)


def _label_names(label_bytes: bytes) -> list[str]:
    """The image names of a ``label.csv`` in file order, parsed as :func:`~ran_core.data.ferplus.read_ferplus` does
    (header and malformed rows skipped, each name once)."""
    names: dict[str, None] = {}  # ordered, O(1) membership
    text = label_bytes.decode("utf-8-sig", errors="surrogateescape")
    for row in csv.reader(io.StringIO(text, newline="")):
        parsed = _parse_row(row) if row else None
        if parsed is not None:
            names.setdefault(parsed[0])
    return list(names)


def pack_ferplus(
    root: str | Path, out: str | Path, splits: Sequence[str] = ("train", "valid"), progress: bool = True
) -> PackReport:
    """Pack the listed FERPlus splits found under ``root`` into ``out`` (an ``.npz`` file).

    Every image a split's ``label.csv`` names is read as grayscale; one that is missing, cannot be decoded or differs
    in size from the first is left out and named in the report (its ``label.csv`` row stays: the reader then skips it
    as a missing file).

    Raises:
        FileNotFoundError: none of the splits is there.
        ValueError: an unknown split.
    """
    from ran_core.imageio import ImageReadError, read_image, to_gray

    root, out = Path(root).expanduser(), Path(out).expanduser()
    unknown = [s for s in splits if s not in SPLIT_FOLDERS]
    if unknown:
        raise ValueError(f"FERPlus has splits {', '.join(SPLIT_FOLDERS)}, not {', '.join(unknown)}")
    report = PackReport(out)
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"format": PACK_FORMAT, "version": PACK_VERSION, "filter": "delta2d", "splits": {}}
    shape: tuple[int, int] | None = None
    for split in splits:
        folder = root / SPLIT_FOLDERS[split]
        label_path = folder / LABEL_FILE
        if not label_path.is_file():
            logger.warning("FERPlus %s: %s is missing; split not packed", split, label_path)
            continue
        label_bytes = label_path.read_bytes()
        skipped = SkipReport()
        kept_names, images = [], []
        names = _label_names(label_bytes)
        iterator = names
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(names, desc=f"packing {split}", unit="img", leave=False)
        for name in iterator:
            path = folder / name
            if not path.is_file():
                skipped.add("missing file", name)
                continue
            try:
                img = to_gray(read_image(path))  # a gray image comes back byte for byte
            except ImageReadError:
                skipped.add("unreadable image", name)
                continue
            if shape is None:
                shape = img.shape
            if img.shape != shape:
                skipped.add(f"not {shape[1]}x{shape[0]}", name)
                continue
            kept_names.append(name)
            images.append(img)
        stack = np.stack(images) if images else np.zeros((0, *(shape or (48, 48))), np.uint8)
        arrays[f"{split}_images"] = delta_encode(stack)
        arrays[f"{split}_label_csv"] = np.frombuffer(label_bytes, dtype=np.uint8)
        arrays[f"{split}_names"] = np.frombuffer("\n".join(kept_names).encode("utf-8", "surrogateescape"), np.uint8)
        meta["splits"][split] = {"folder": SPLIT_FOLDERS[split], "images": len(kept_names)}
        report.images[split] = len(kept_names)
        report.skipped[split] = skipped
    if not meta["splits"]:
        raise FileNotFoundError(
            f"no FERPlus split found under {root} (expected {', '.join(SPLIT_FOLDERS[s] for s in splits)}/{LABEL_FILE})"
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    report.size_bytes = out.stat().st_size
    return report


def read_pack_meta(pack: np.lib.npyio.NpzFile, path: Path) -> dict:
    if "meta" not in pack.files:
        raise ValueError(f"{path} is not a ran-core FERPlus pack (no meta entry)")
    meta = json.loads(pack["meta"].tobytes().decode())
    if meta.get("format") != PACK_FORMAT:
        raise ValueError(f"{path} is not a ran-core FERPlus pack (format {meta.get('format')!r})")
    if meta.get("version", 0) > PACK_VERSION:
        raise ValueError(f"{path} is pack version {meta['version']}; this ran-core reads up to {PACK_VERSION}")
    return meta


def unpack_ferplus(pack_path: str | Path, root: str | Path, progress: bool = True) -> PackReport:
    """Write the splits of a pack back into Microsoft's layout under ``root`` (existing files are overwritten).

    Raises:
        FileNotFoundError: no such pack.
        ValueError: the file is not a pack this version reads.
    """
    import cv2

    pack_path, root = Path(pack_path).expanduser(), Path(root).expanduser()
    if not pack_path.is_file():
        raise FileNotFoundError(f"no pack at {pack_path}")
    report = PackReport(root)
    try:
        pack = np.load(pack_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{pack_path} is not a ran-core FERPlus pack ({e})") from e
    with pack:
        meta = read_pack_meta(pack, pack_path)
        for split, info in meta["splits"].items():
            folder = root / info["folder"]
            folder.mkdir(parents=True, exist_ok=True)
            images = delta_decode(pack[f"{split}_images"])
            names_blob = pack[f"{split}_names"].tobytes().decode("utf-8", "surrogateescape")
            names = names_blob.split("\n") if names_blob else []
            if len(names) != len(images):
                raise ValueError(f"{pack_path}: {split} holds {len(images)} images but {len(names)} names")
            iterator = zip(names, images)
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, total=len(names), desc=f"unpacking {split}", unit="img", leave=False)
            for name, img in iterator:
                if not cv2.imwrite(str(folder / name), img):
                    raise OSError(f"could not write {folder / name}")
            (folder / LABEL_FILE).write_bytes(pack[f"{split}_label_csv"].tobytes())
            report.images[split] = len(names)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ran_core.data.pack", description=__doc__.split("\n\n")[0].strip())
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="FERPlus folder -> one .npz")
    p.add_argument("root", type=Path, help="FERPlus root (FER2013Train/, FER2013Valid/ ...)")
    p.add_argument("out", type=Path, help="the pack to write (.npz)")
    p.add_argument("--splits", nargs="+", default=["train", "valid"], choices=list(SPLIT_FOLDERS))
    u = sub.add_parser("unpack", help=".npz -> FERPlus folder")
    u.add_argument("pack", type=Path)
    u.add_argument("root", type=Path, help="where to write FER2013Train/ ...")
    for q in (p, u):
        q.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        if args.command == "pack":
            report = pack_ferplus(args.root, args.out, args.splits, progress=not args.no_progress)
        else:
            report = unpack_ferplus(args.pack, args.root, progress=not args.no_progress)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
