"""ONNX export of RAN and the baseline, and an ONNX Runtime model that the Predictor can use instead of PyTorch.

The exported graph takes ``crops``, the ``(B, K, C, H, W)`` normalised region crops (dynamic batch), and returns
``logits`` ``(B, num_classes)``, ``alpha`` and ``beta`` ``(B, K)`` (all ones, K = 1, for the baseline). Region
cutting, normalisation, test-time augmentation and the logit bias stay outside the graph, described by the saved
model's ``config.json`` written beside the ``.onnx`` file (``OUT.json``), so any runtime can reproduce them; in
Python, :class:`OnnxModel` + :func:`ran_core.models.infer` do exactly what the PyTorch model does.

Opset :data:`OPSET` (``torch.onnx.export`` with ``dynamo=True``; needs the ``onnx`` and ``onnxscript`` packages, and
``onnxruntime`` to run: ``pip install "ran-fer[onnx]"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ran_core.cache import cache_root
from ran_core.config import ModelConfig
from ran_core.structures import ModelOutput

logger = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "crops"
OUTPUT_NAMES = ("logits", "alpha", "beta")
ONNX_HINT = 'pip install onnx onnxscript onnxruntime (or pip install "ran-fer[onnx]")'


class OnnxUnavailable(RuntimeError):
    """onnx / onnxscript / onnxruntime is not installed; the message says what to install."""


class _Exportable(nn.Module):
    """``crops -> (logits, alpha, beta)`` with plain tensors, the baseline's weights as ones."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(crops)
        if out.alpha is None:
            ones = out.logits.new_ones((out.logits.shape[0], 1))
            return out.logits, ones, ones
        return out.logits, out.alpha, out.beta


def config_path_for(onnx_path: str | Path) -> Path:
    """``OUT.onnx`` -> ``OUT.json``, where the model config lives."""
    return Path(onnx_path).with_suffix(".json")


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` and its config beside it; returns the ``.onnx`` path.

    Raises:
        OnnxUnavailable: the exporter's packages are missing.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable(f"ONNX export needs {exc.name}: {ONNX_HINT}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config: ModelConfig = model.config
    was_training = model.training
    model.eval()
    k, c, s = config.regions.num_regions, config.in_chans, config.input_size
    if config.arch == "baseline":
        k = 1
    example = torch.zeros(2, k, c, s, s, device=next(model.parameters()).device)
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        torch.onnx.export(
            _Exportable(model).eval(),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"crops": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,  # one self-contained file (the models are a few MB)
            verbose=False,
        )
    finally:
        model.train(was_training)
    config_path_for(path).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return path


def quantize_int8(onnx_path: str | Path, out: str | Path | None = None) -> Path:
    """Dynamic int8 quantisation of an exported model with ONNX Runtime (weights int8, activations quantised on the
    fly): ``OUT.onnx`` -> ``OUT.int8.onnx`` (+ its config). Measure its accuracy before using it (``ran-core eval
    --checkpoint OUT.int8.onnx``): small CNNs can lose more than large ones."""
    try:
        from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic
    except ImportError:
        raise OnnxUnavailable(f"int8 quantisation needs onnxruntime: {ONNX_HINT}") from None
    src = Path(onnx_path)
    out = Path(out) if out is not None else src.with_suffix(".int8.onnx")
    prepared = out.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    cfg = json.loads(config_path_for(src).read_text())
    cfg.setdefault("provenance", {})["onnx_int8"] = f"dynamic int8 quantisation of {src.name}"
    config_path_for(out).write_text(json.dumps(cfg, indent=2) + "\n")
    return out


class OnnxModel:
    """An exported model run by ONNX Runtime, usable wherever ran_core calls a model for inference.

    ``OnnxModel(path)(crops)`` returns a :class:`~ran_core.structures.ModelOutput` like the PyTorch model does, and
    it carries the same ``config``, so :func:`ran_core.models.infer` and the Predictor work unchanged.

    Args:
        path: the ``.onnx`` file (its config is read from ``OUT.json`` beside it).
        threads: intra-op threads for ONNX Runtime (0: its default).
    """

    backend = "onnx"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxUnavailable(f"the onnx backend needs onnxruntime: {ONNX_HINT}") from None
        path = Path(path)
        cfg_path = config_path_for(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{path}: its model config {cfg_path.name} is missing (written by ran-core export)")
        self.config = ModelConfig.from_dict(json.loads(cfg_path.read_text()))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.region_chunk = None
        self.training = False

    def __call__(self, crops: torch.Tensor) -> ModelOutput:
        x = crops if crops.ndim == 5 else crops[:, None]
        if self.config.arch == "baseline":
            x = x[:, :1]
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        logits, alpha, beta = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: arr})
        if self.config.arch == "baseline":
            return ModelOutput(logits=torch.from_numpy(logits))
        return ModelOutput(logits=torch.from_numpy(logits), alpha=torch.from_numpy(alpha), beta=torch.from_numpy(beta))

    # The parts of the nn.Module interface inference code uses.
    def eval(self) -> OnnxModel:
        return self

    def to(self, *args, **kwargs) -> OnnxModel:
        return self

    def autotune_region_chunk(self, *args, **kwargs) -> None:
        return None


def onnx_for(model_ref: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The ONNX file of a saved model: ``model_ref`` itself if it is one, else exported once into a cache (keyed by
    the weights' content, so a retrained model is exported again)."""
    from ran_core.saved_model import load_model, read_config, resolve_model_path

    p = Path(model_ref)
    if p.suffix == ".onnx":
        return p
    weights, _ = resolve_model_path(model_ref)
    digest = hashlib.sha1(weights.read_bytes()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir else cache_root() / "onnx"
    out = root / f"{digest}.onnx"
    if not out.is_file() or not config_path_for(out).is_file():
        logger.info("exporting %s to ONNX (once) at %s", model_ref, out)
        export_onnx(load_model(model_ref), out)
    else:
        # the cached graph is the same weights; the config (TTA, logit bias) may have been recalibrated since
        config_path_for(out).write_text(json.dumps(read_config(model_ref).to_dict(), indent=2) + "\n")
    return out
