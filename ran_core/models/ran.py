"""Region Attention Network (Wang et al., IEEE TIP 2020) and the paper's whole-face baseline.

RAN runs one shared backbone over K crops of a face, giving features ``f_i``. A self-attention layer scores each
region, ``alpha_i = sigmoid(FC(f_i))``, and pools ``F_m = sum(alpha_i f_i) / sum(alpha_i)``. A relation-attention
layer rescores each region against that pooled face, ``beta_i = sigmoid(FC([f_i ; F_m]))``, and the final
representation is ``P = sum(alpha_i beta_i [f_i ; F_m]) / sum(alpha_i beta_i)``, classified by one linear layer.

With ``attention_norm="softmax"`` (the default) alpha and beta are additionally softmax-normalised across regions
before they are used, as in the authors' official FERPlus code.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ran_core.config import ModelConfig
from ran_core.models.backbones import build_backbone
from ran_core.structures import ModelOutput


def _as_regions(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 4:  # a plain image batch is one region per face
        return x[:, None]
    if x.ndim != 5:
        raise ValueError(f"expected (B, K, C, H, W) region crops or (B, C, H, W) images, got shape {tuple(x.shape)}")
    return x


class RegionAttentionNetwork(nn.Module):
    """RAN: shared backbone over regions, self- and relation-attention, attention-weighted aggregation.

    Input: ``(B, K, C, H, W)`` region crops, region 0 the whole face. Output: :class:`ModelOutput` with logits and the
    per-region ``alpha`` and ``beta``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, config.in_chans)
        dim = self.backbone.num_features
        self.num_features = dim
        self.dropout = nn.Dropout(config.drop_rate)
        self.alpha_fc = nn.Linear(dim, 1)
        self.beta_fc = nn.Linear(2 * dim, 1)
        self.classifier = nn.Linear(2 * dim, config.num_classes)
        # Regions per backbone call: None runs all K regions of the batch in one call (B*K images); 1 is the official
        # code's per-region loop. Which is fastest depends on the device and sizes: see autotune_region_chunk().
        self.region_chunk: int | None = None
        # Feed the backbone NHWC tensors: measured faster with oneDNN on CPU and with cuDNN on GPU.
        self.channels_last = False

    @property
    def num_regions(self) -> int:
        return self.config.regions.num_regions

    def _backbone(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K, C, H, W)`` crops -> ``(B, K, D)`` region features."""
        x = _as_regions(x)
        b, k = x.shape[:2]
        chunk = self.region_chunk or k
        if chunk >= k:
            return self._backbone(x.flatten(0, 1)).view(b, k, -1)
        parts = [
            self._backbone(x[:, i : i + chunk].flatten(0, 1)).view(b, -1, self.num_features) for i in range(0, k, chunk)
        ]
        return torch.cat(parts, dim=1)

    def forward_head(self, feats: torch.Tensor) -> ModelOutput:
        """``(B, K, D)`` region features -> logits and attention weights."""
        softmax = self.config.attention_norm == "softmax"
        att_in = self.dropout if self.config.attention_dropout else nn.Identity()
        alpha_raw = torch.sigmoid(self.alpha_fc(att_in(feats))).squeeze(-1)  # (B, K)
        alpha = F.softmax(alpha_raw, dim=1) if softmax else alpha_raw
        face = (alpha[..., None] * feats).sum(1) / alpha.sum(1, keepdim=True).clamp_min(1e-12)  # F_m
        joint = torch.cat([feats, face[:, None].expand_as(feats)], dim=-1)  # [f_i ; F_m], (B, K, 2D)
        beta_raw = torch.sigmoid(self.beta_fc(att_in(joint))).squeeze(-1)
        beta = F.softmax(beta_raw, dim=1) if softmax else beta_raw
        ab = alpha * beta
        pooled = (ab[..., None] * joint).sum(1) / ab.sum(1, keepdim=True).clamp_min(1e-12)  # P
        logits = self.classifier(self.dropout(pooled))
        return ModelOutput(
            logits=logits, alpha=alpha, beta=beta, alpha_raw=alpha_raw, beta_raw=beta_raw, features=pooled
        )

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.forward_head(self.forward_features(x))

    @torch.inference_mode()
    def autotune_region_chunk(
        self, batch_size: int = 8, repeats: int = 3, device: torch.device | str | None = None
    ) -> int | None:
        """Time the region-batching strategies on this device and keep the fastest (eval mode only).

        Candidates are all K regions per call, half of them, and one region per call (the official loop). Returns
        the chosen ``region_chunk``.
        """
        device = torch.device(device) if device is not None else next(self.parameters()).device
        k, c, s = self.num_regions, self.config.in_chans, self.config.input_size
        x = torch.randn(batch_size, k, c, s, s, device=device)
        was_training = self.training
        self.eval()
        best, best_t = None, float("inf")
        for chunk in dict.fromkeys([None, max(1, (k + 1) // 2), 1]):
            self.region_chunk = chunk
            self.forward_features(x)  # warm-up (allocator, oneDNN/cuDNN kernel choice)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                self.forward_features(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter() - t0
            if t < best_t:
                best, best_t = chunk, t
        self.region_chunk = best
        self.train(was_training)
        return best


class BaselineNet(nn.Module):
    """The paper's baseline: the same backbone on the whole face and a linear classifier.

    It accepts the same ``(B, K, C, H, W)`` input as RAN and uses region 0 (the whole face), so every tool can feed
    both models the same way.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, config.in_chans)
        self.num_features = self.backbone.num_features
        self.dropout = nn.Dropout(config.drop_rate)
        self.classifier = nn.Linear(self.num_features, config.num_classes)
        self.region_chunk: int | None = None
        self.channels_last = False

    @property
    def num_regions(self) -> int:
        return 1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_regions(x)[:, 0]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def forward_head(self, feats: torch.Tensor) -> ModelOutput:
        return ModelOutput(logits=self.classifier(self.dropout(feats)), features=feats)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.forward_head(self.forward_features(x))

    def autotune_region_chunk(self, *args, **kwargs) -> None:
        return None
