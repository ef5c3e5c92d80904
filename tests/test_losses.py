"""The region-biased loss and the training criterion, against values worked out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ran_core import ModelOutput, RANCriterion, region_biased_loss


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(
    ("alpha", "margin", "expected"),
    [
        ([[0.5, 0.6, 0.1]], 0.02, 0.0),  # a crop beats the face by 0.1 > margin
        ([[0.5, 0.52, 0.1]], 0.02, 0.0),  # exactly at the margin
        ([[0.5, 0.49, 0.3]], 0.02, 0.03),  # 0.02 - (0.49 - 0.5)
        ([[0.5, 0.55]], 0.1, 0.05),  # the margin parameter is used ...
        ([[0.5, 0.55]], 0.02, 0.0),  # ... and a smaller one is met
        ([[0.5, 0.9, 0.0]], 0.02, 0.0),  # the BEST crop counts, not the mean of the crops (0.45)
        ([[0.9, 0.1, 0.2, 0.3]], 0.02, 0.62),  # 0.02 - (0.3 - 0.9)
        ([[0.1, 0.9, 0.5]], 0.02, 0.0),  # region 0 is the face: a strong face is what is penalised
        ([[0.5, 0.6, 0.1], [0.5, 0.49, 0.3]], 0.02, 0.015),  # mean over the batch
    ],
)
def test_rb_loss_hand_values(alpha: list[list[float]], margin: float, expected: float) -> None:
    loss = region_biased_loss(_t(alpha), margin=margin)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_rb_loss_default_margin_is_002() -> None:
    assert region_biased_loss(_t([[0.5, 0.5]])).item() == pytest.approx(0.02)


def test_rb_loss_gradient() -> None:
    alpha = _t([[0.5, 0.49, 0.3], [0.5, 0.6, 0.1]]).requires_grad_()
    region_biased_loss(alpha, 0.02).backward()
    # Active sample: pushes the face down and the best crop up, by 1/B each; the met sample gets nothing.
    torch.testing.assert_close(alpha.grad, _t([[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("shape", [(4,), (4, 1), (2, 3, 4)])
def test_rb_loss_needs_b_by_k(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="region-biased loss"):
        region_biased_loss(torch.rand(shape))


def _output(batch: int = 4, k: int = 6, classes: int = 8, with_alpha: bool = True) -> ModelOutput:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, generator=g)
    if not with_alpha:
        return ModelOutput(logits=logits)
    alpha = torch.softmax(torch.randn(batch, k, generator=g), dim=1)
    alpha[:, 0] = alpha.max(dim=1).values + 0.05  # the face dominates: the RB term is active
    return ModelOutput(logits=logits, alpha=alpha, beta=torch.full_like(alpha, 1 / k))


def test_criterion_hard_targets() -> None:
    out, target = _output(), torch.tensor([0, 3, 7, 1])
    loss, parts = RANCriterion(lambda_rb=0.5, margin=0.02)(out, target)
    ce = F.cross_entropy(out.logits, target)
    rb = region_biased_loss(out.alpha, 0.02)
    assert rb > 0
    torch.testing.assert_close(parts["ce"], ce)
    torch.testing.assert_close(parts["rb"], rb)
    torch.testing.assert_close(loss, ce + 0.5 * rb)
    assert not parts["ce"].requires_grad and not parts["rb"].requires_grad
    # label smoothing reaches cross-entropy
    smooth, _ = RANCriterion(lambda_rb=0.0, label_smoothing=0.1)(out, target)
    torch.testing.assert_close(smooth, F.cross_entropy(out.logits, target, label_smoothing=0.1))


def test_criterion_soft_targets() -> None:
    out = _output()
    # FERPlus probability mode: each row is the annotators' vote distribution.
    soft = torch.tensor(
        [[0.7, 0.3, 0, 0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0, 0, 0], [0.1] * 5 + [0.5, 0, 0], [0.125] * 8]
    )
    loss, parts = RANCriterion(lambda_rb=0.0)(out, soft)
    logp = torch.log_softmax(out.logits.double(), dim=1)
    expected = -(soft.double() * logp).sum(1).mean()
    assert parts["ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert "rb" not in parts
    # one-hot soft targets are hard targets
    hard = torch.tensor([0, 2, 5, 1])
    one_hot, _ = RANCriterion(lambda_rb=0.0)(out, F.one_hot(hard, 8).float())
    torch.testing.assert_close(one_hot, F.cross_entropy(out.logits, hard))


def test_criterion_margin_and_weight() -> None:
    out, target = _output(), torch.tensor([0, 1, 2, 3])
    _, small = RANCriterion(margin=0.02)(out, target)
    _, big = RANCriterion(margin=0.5)(out, target)
    torch.testing.assert_close(big["rb"] - small["rb"], torch.tensor(0.48))  # active everywhere: linear in margin
    loss1, p1 = RANCriterion(lambda_rb=1.0)(out, target)
    loss3, _ = RANCriterion(lambda_rb=3.0)(out, target)
    torch.testing.assert_close(loss3 - loss1, 2 * p1["rb"])


def test_criterion_without_attention_has_no_rb_term() -> None:
    target = torch.tensor([0, 1, 2, 3])
    base = _output(with_alpha=False)
    loss, parts = RANCriterion(lambda_rb=1.0, margin=0.5)(base, target)
    assert set(parts) == {"ce"}
    torch.testing.assert_close(loss, F.cross_entropy(base.logits, target))
    one_region = ModelOutput(logits=base.logits, alpha=torch.ones(4, 1), beta=torch.ones(4, 1))
    loss, parts = RANCriterion(lambda_rb=1.0, margin=0.5)(one_region, target)
    assert set(parts) == {"ce"}


def test_criterion_under_bf16_logits_is_float32() -> None:
    out = _output()
    low = ModelOutput(logits=out.logits.bfloat16(), alpha=out.alpha.bfloat16(), beta=out.beta.bfloat16())
    loss, _ = RANCriterion()(low, torch.tensor([0, 1, 2, 3]))
    assert loss.dtype == torch.float32
