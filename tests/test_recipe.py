"""The training recipe levers (augmentation presets, plateau schedule, early stopping, warm starts, the RB-loss margin
bound) and inference as the saved model asks for it (flip TTA, logit adjustment, ``ran-core calibrate``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ferplus_fixtures import make_ferplus
from ferplus_fixtures import train_config as _cfg

import ran_core.engine.trainer as trainer_mod
from ran_core import create_model, load_model, save_model
from ran_core.cli import main as cli_main
from ran_core.config import ModelConfig
from ran_core.data.pipeline import PART_JITTER, PART_OCCLUDERS, AugmentConfig, RegionBatcher
from ran_core.engine.calibrate import fit_tau
from ran_core.engine.trainer import TrainConfig, Trainer, init_from_saved
from ran_core.faces import Detection
from ran_core.losses import max_rb_gap
from ran_core.models import infer
from ran_core.models.inference import shift_crops, shift_pixels, tta_views
from ran_core.predictor import Predictor

# ------------------------------------------------------------------------------------------------- augmentation


def test_strong_augmentation_moves_landmarks_with_the_image() -> None:
    """Rotation, zoom, shift, shear and flip are one affine map: a bright dot must land where its landmark goes."""
    b, size = 24, 48
    rng = np.random.default_rng(0)
    pts = rng.uniform(16, 32, (b, 2)).astype(np.float32)
    images = torch.zeros(b, 1, size, size)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for i, (x, y) in enumerate(pts):
        images[i, 0] = torch.exp(-((xx - float(x)) ** 2 + (yy - float(y)) ** 2) / 2.0)
    lm = torch.from_numpy(pts)[:, None].repeat(1, 5, 1)  # five copies: the flip's left/right swap changes nothing
    aug = AugmentConfig(flip=0.5, rotate=30, scale=0.2, translate=0.1, shear=0.2)
    batcher = RegionBatcher(create_model("ran_compact", regions={"scheme": "landmark"}).config, aug, seed=3)
    out, moved = batcher._augment(images, lm)
    for i in range(b):
        peak = divmod(int(out[i, 0].argmax()), size)  # (row, col)
        got = np.array([peak[1] + 0.5, peak[0] + 0.5])
        assert np.abs(got - moved[i, 0].numpy()).max() <= 1.5, (i, got, moved[i, 0])
    # shear really is applied: with only shear, a vertical line becomes slanted
    line = torch.zeros(1, 1, size, size)
    line[..., :, 23:25] = 1
    only_shear = RegionBatcher(batcher.config, AugmentConfig(flip=0, shear=0.2), seed=0)
    sheared, _ = only_shear._augment(line.repeat(8, 1, 1, 1), None)
    top, bottom = sheared[:, 0, 4].argmax(1), sheared[:, 0, -5].argmax(1)
    assert (top - bottom).abs().max() >= 3


def test_brightness_range_and_presets() -> None:
    config = create_model("baseline_compact").config
    x = torch.full((4, 1, 48, 48), 0.8)
    out, _ = RegionBatcher(config, AugmentConfig(flip=0, brightness=(0.5, 0.5)))._augment(x, None)
    torch.testing.assert_close(out, torch.full_like(x, 0.4))
    with pytest.raises(ValueError, match="brightness"):
        AugmentConfig(brightness=(1.2, 0.2))
    strong = AugmentConfig.preset("strong")
    assert (strong.rotate, strong.translate, strong.shear, strong.scale, strong.brightness) == (
        30.0,
        0.2,
        0.2,
        0.2,
        (0.2, 1.2),
    )
    assert AugmentConfig.preset("none") is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        AugmentConfig.preset("extreme")
    with pytest.raises(ValueError, match="--augment"):
        TrainConfig(data_root="x", augment="extreme")
    assert TrainConfig(data_root="x").augment == "official" and TrainConfig(data_root="x", recipe="modern").augment == (
        "modern"
    )


# ----------------------------------------------------------------------------------- schedule and early stopping


def _scripted_validation(monkeypatch, losses: list[float] | None = None, constant: bool = False) -> None:
    """Make validation report the given losses in turn (and, with ``constant``, always predict class 0)."""
    real = trainer_mod.predict_split
    calls = {"n": 0}

    def fake(*args, **kwargs):
        out = real(*args, **kwargs)
        if losses is not None:
            out["loss"] = losses[calls["n"] % len(losses)]
        if constant:
            out["probs"] = np.tile(np.eye(out["probs"].shape[1])[0], (len(out["probs"]), 1))
        calls["n"] += 1
        return out

    monkeypatch.setattr(trainer_mod, "predict_split", fake)


def test_plateau_schedule_halves_the_lr_on_validation_loss_and_resumes(ferplus_root, tmp_path, monkeypatch) -> None:
    _scripted_validation(monkeypatch, losses=[1.0, 2.0, 2.0, 0.5])
    kw = dict(epochs=4, schedule="plateau", plateau_patience=0, plateau_factor=0.5, lr=0.004)
    full = Trainer(_cfg(ferplus_root, tmp_path / "full", **kw))
    full.run()
    assert [round(r["lr"], 6) for r in full.history] == [0.004, 0.004, 0.002, 0.001]
    # stopped after epoch 2 and resumed: the same learning rates (the plateau state is in the checkpoint)
    _scripted_validation(monkeypatch, losses=[1.0, 2.0])
    Trainer(_cfg(ferplus_root, tmp_path / "cut", **{**kw, "epochs": 2})).run()
    _scripted_validation(monkeypatch, losses=[2.0, 0.5])  # validation continues with epoch 3's loss
    resumed = Trainer(_cfg(ferplus_root, tmp_path / "cut", **kw), resume=True)
    resumed.run()
    assert [round(r["lr"], 6) for r in resumed.history] == [0.004, 0.004, 0.002, 0.001]


def test_early_stop_after_patience_epochs_without_better_accuracy(ferplus_root, tmp_path, monkeypatch) -> None:
    _scripted_validation(monkeypatch, constant=True)
    summary = Trainer(_cfg(ferplus_root, tmp_path / "run", epochs=10, early_stop=2)).run()
    assert summary["epochs_done"] == 3  # epoch 1 is the best; epochs 2 and 3 bring nothing better
    # a resumed run decides from its history: nothing more to do
    again = Trainer(_cfg(ferplus_root, tmp_path / "run", epochs=10, early_stop=2), resume=True).run()
    assert again["epochs_done"] == 3
    with pytest.raises(ValueError, match="early-stop"):
        TrainConfig(data_root="x", early_stop=0)


# ------------------------------------------------------------------------------------------- weight averaging


class _RecordingTrainer(Trainer):
    """Keeps a copy of every floating tensor of the model after each optimiser step."""

    def _setup(self) -> None:
        super()._setup()
        self.after_steps: list[dict[str, torch.Tensor]] = []

        def record(*_: object) -> None:
            state = self.model.state_dict()
            self.after_steps.append({k: v.detach().clone() for k, v in state.items() if v.is_floating_point()})

        self.optimizer.register_step_post_hook(record)


def test_ema_validates_and_saves_the_moving_average_of_every_step(ferplus_root, tmp_path) -> None:
    decay = 0.6
    trainer = _RecordingTrainer(_cfg(ferplus_root, tmp_path / "ema", epochs=1, ema=decay))
    trainer.run()
    steps = trainer.after_steps
    assert len(steps) == 3  # 24 faces, batches of 8
    expected = dict(steps[0])  # the average starts at the weights after the first step
    for w in steps[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * w[k] for k in expected}
    saved = load_model(tmp_path / "ema").state_dict()
    for k, v in expected.items():  # parameters and the batch-norm running statistics alike
        torch.testing.assert_close(saved[k], v, rtol=1e-5, atol=1e-6, msg=k)
    raw = trainer.model.state_dict()
    assert not all(torch.equal(saved[k], raw[k]) for k in expected)  # not the last step's weights
    assert load_model(tmp_path / "ema").config.provenance["ema"] == decay
    with pytest.raises(ValueError, match="--ema"):
        TrainConfig(data_root="x", ema=1.0)


def test_ema_survives_an_interruption(ferplus_root, tmp_path) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "full", ema=0.7)).run()
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(ferplus_root, tmp_path / "cut", ema=0.7), interrupt_after_steps=2).run()
    Trainer(_cfg(ferplus_root, tmp_path / "cut", ema=0.7), resume=True).run()
    a, b = load_model(tmp_path / "full").state_dict(), load_model(tmp_path / "cut").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


# ------------------------------------------------------------------------------------------------- warm starts


def test_init_from_a_baseline_gives_ran_its_backbone(ferplus_root, tmp_path) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "base", model="baseline", epochs=1)).run()
    source = load_model(tmp_path / "base")
    ran = create_model("ran_compact")
    fresh_alpha = ran.alpha_fc.weight.clone()
    report = init_from_saved(ran, tmp_path / "base")  # a run directory: its best/ model
    for k, v in source.backbone.state_dict().items():
        torch.testing.assert_close(ran.backbone.state_dict()[k], v, rtol=0, atol=0)
    assert torch.equal(ran.alpha_fc.weight, fresh_alpha)
    assert "alpha_fc.weight" in report["fresh"] and "classifier.weight" in report["fresh"]  # [f; F_m] is twice as wide
    # through the trainer and the CLI flag
    out = tmp_path / "ran"
    argv = ["train", "--dataset", "ferplus", "--data-root", str(ferplus_root), "--out", str(out), "--epochs", "1"]
    argv += ["--batch-size", "8", "--amp", "off", "--init-from", str(tmp_path / "base")]
    assert cli_main(argv) == 0
    assert "init_from" in (out / "config.yaml").read_text()


def test_freeze_backbone_keeps_the_warm_start_fixed_then_trains_it(ferplus_root, tmp_path) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "base", model="baseline", epochs=1)).run()
    start = {f"backbone.{k}": v for k, v in load_model(tmp_path / "base").backbone.state_dict().items()}
    start = {k: v for k, v in start.items() if v.is_floating_point()}
    cfg = _cfg(ferplus_root, tmp_path / "ran", epochs=2, freeze_backbone=1, init_from=str(tmp_path / "base"))
    trainer = _RecordingTrainer(cfg)
    trainer.run()
    steps = trainer.after_steps
    assert len(steps) == 6  # 24 faces, batches of 8, two epochs
    for w in steps[:3]:  # epoch 1: weights and batch-norm statistics exactly as warm-started
        for k, v in start.items():
            assert torch.equal(w[k], v), k
    assert not torch.equal(steps[0]["alpha_fc.weight"], steps[2]["alpha_fc.weight"])  # the attention learns
    assert not torch.equal(steps[0]["classifier.weight"], steps[2]["classifier.weight"])
    assert any(not torch.equal(steps[-1][k], v) for k, v in start.items())  # epoch 2 trains the backbone too
    assert all(p.requires_grad for p in trainer.model.parameters())
    assert load_model(tmp_path / "ran").config.provenance["freeze_backbone"] == 1
    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(data_root="x", freeze_backbone=1)
    with pytest.raises(ValueError, match="--freeze-backbone"):
        TrainConfig(data_root="x", init_from="y", epochs=2, freeze_backbone=3)


def test_freeze_stages_keeps_the_first_stages_fixed_for_the_whole_run(ferplus_root, tmp_path, caplog) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "base", model="baseline", epochs=1)).run()
    start = {k: v for k, v in load_model(tmp_path / "base").backbone.state_dict().items() if v.is_floating_point()}
    cfg = _cfg(ferplus_root, tmp_path / "ran", epochs=2, freeze_stages=2, init_from=str(tmp_path / "base"))
    trainer = _RecordingTrainer(cfg)
    with caplog.at_level("INFO", logger="ran_core.engine.trainer"):
        trainer.run()
    assert "the first 2 of the backbone's 4 stages stay fixed" in caplog.text
    fixed = [k for k in start if k.startswith(("stem.", "stages.0."))]  # the stem and the first residual stage
    later = [k for k in start if k.startswith("stages.1.")]
    assert fixed and later and any("running_mean" in k for k in fixed)
    for w in trainer.after_steps:  # every step of both epochs: weights and batch-norm statistics as warm-started
        for k in fixed:
            assert torch.equal(w[f"backbone.{k}"], start[k]), k
    assert any(not torch.equal(trainer.after_steps[-1][f"backbone.{k}"], start[k]) for k in later)
    assert not any(p.requires_grad for p in trainer.model.backbone.stem.parameters())
    assert all(p.requires_grad for p in trainer.model.backbone.stages[1].parameters())
    assert load_model(tmp_path / "ran").config.provenance["freeze_stages"] == 2
    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(data_root="x", freeze_stages=1)
    with pytest.raises(ValueError, match="has 4 stages"):
        Trainer(_cfg(ferplus_root, tmp_path / "too-many", freeze_stages=5, init_from=str(tmp_path / "base"))).run()


def test_backbone_stages_cover_every_parameter_in_order() -> None:
    from ran_core.models.backbones import backbone_stages, build_backbone

    for name, n in (("compact", 4), ("compact_deep", 4), ("sepconv", 4), ("resnet18", 5), ("vgg16", 5)):
        backbone = build_backbone(name, 1)
        stages = backbone_stages(backbone)
        assert len(stages) == n, name
        in_stages = [id(p) for s in stages for p in s.parameters()]
        assert sorted(in_stages) == sorted(id(p) for p in backbone.parameters()), name  # each exactly once
    deep = backbone_stages(build_backbone("compact_deep", 1))
    assert [len(s) for s in deep[1:]] == [2, 2, 2]  # two blocks a stage, the first strided and the second not
    assert [(s[0].conv1[0].stride, s[1].conv1[0].stride) for s in deep[1:]] == [((2, 2), (1, 1))] * 3
    sep = backbone_stages(build_backbone("sepconv", 1))
    assert all(isinstance(s[-1], torch.nn.Dropout2d) and isinstance(s[-2], torch.nn.MaxPool2d) for s in sep)
    with pytest.raises(TypeError, match="no stages"):
        backbone_stages(torch.nn.Linear(2, 2))


def test_compact_depth_keeps_the_one_block_weights_names() -> None:
    from ran_core.models.backbones import CompactResNet, build_backbone

    wide, deep = build_backbone("compact_wide", 1), build_backbone("compact_deep", 1)
    # bundled compact / compact_wide models were saved with one block a stage as stages.0-2: those names must stay
    assert "stages.2.conv2.0.weight" in wide.state_dict() and "stages.3.conv1.0.weight" not in wide.state_dict()
    assert "stages.5.conv2.0.weight" in deep.state_dict()
    assert deep.num_features == wide.num_features == 192
    assert deep(torch.zeros(2, 1, 48, 48)).shape == (2, 192)
    with pytest.raises(ValueError, match="at least 1"):
        CompactResNet(1, blocks_per_stage=0)


def test_init_from_refuses_another_backbone_and_non_models(tmp_path) -> None:
    save_model(create_model("baseline_sepconv"), tmp_path / "sep")
    with pytest.raises(ValueError, match="backbone is sepconv"):
        init_from_saved(create_model("ran_compact"), tmp_path / "sep")
    with pytest.raises(ValueError, match="--init-from"):
        init_from_saved(create_model("ran_compact"), tmp_path / "nothing-here")


# --------------------------------------------------------------------------------------------- RB-loss margin


def test_rb_margin_bound_is_reachable_and_enforced(ferplus_root, tmp_path) -> None:
    k = 6
    bound = max_rb_gap(k)
    assert bound == pytest.approx((math.e - 1) / (math.e + k - 1)) and 0.22 < bound < 0.23
    scores = torch.tensor([[-30.0] + [30.0] + [-30.0] * (k - 2)]).sigmoid()  # whole face 0, one crop 1
    alpha = torch.softmax(scores, dim=1)
    assert float(alpha[0, 1] - alpha[0, 0]) == pytest.approx(bound, abs=1e-6)
    assert max_rb_gap(k, "none") == 1.0
    with pytest.raises(ValueError, match="can never be met"):
        Trainer(_cfg(ferplus_root, tmp_path / "r", rb_margin=0.25, epochs=1)).run()


# ---------------------------------------------------------------------------------------- inference and TTA


def test_flip_tta_averages_probabilities_of_the_mirror_image() -> None:
    torch.manual_seed(0)
    model = create_model("ran_compact").eval()
    x = torch.randn(3, 6, 1, 48, 48)
    with torch.inference_mode():
        got = infer(model, x, "flip").logits.exp()
        want = (model(x).logits.softmax(1) + model(x.flip(-1)).logits.softmax(1)) / 2
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        plain = infer(model, x).logits
        torch.testing.assert_close(plain, model(x).logits.log_softmax(1))


def test_shift_views_move_every_crop_with_edges_replicated() -> None:
    x = torch.arange(2 * 3 * 1 * 4 * 4, dtype=torch.float32).view(2, 3, 1, 4, 4)
    right = shift_crops(x, 1, 0)  # content moves 1 px right, the left column repeats
    torch.testing.assert_close(right[..., :, 1:], x[..., :, :-1])
    torch.testing.assert_close(right[..., :, 0], x[..., :, 0])
    up = shift_crops(x, 0, -1)
    torch.testing.assert_close(up[..., :-1, :], x[..., 1:, :])
    torch.testing.assert_close(up[..., -1, :], x[..., -1, :])
    assert shift_crops(x, 0, 0) is x
    assert [shift_pixels(s) for s in (24, 48, 112, 224)] == [1, 1, 2, 5]
    views = tta_views(x, "flip_shift")
    assert len(views) == 10 and views[0] is x and len(tta_views(x, "shift")) == 5 and len(tta_views(x, "none")) == 1
    torch.testing.assert_close(views[5], x.flip(-1))
    torch.testing.assert_close(views[6], shift_crops(x, 1, 0).flip(-1))
    with pytest.raises(ValueError, match="choose one of none, flip, shift, flip_shift"):
        tta_views(x, "rotate")


def test_flip_shift_tta_averages_the_ten_views_and_keeps_the_plain_weights() -> None:
    torch.manual_seed(0)
    model = create_model("ran_compact").eval()
    x = torch.randn(3, 6, 1, 48, 48)
    with torch.inference_mode():
        out = infer(model, x, "flip_shift")
        plain = model(x)
        views = [x] + [shift_crops(x, dx, dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        views += [v.flip(-1) for v in views]
        want = torch.stack([model(v).logits.softmax(1) for v in views]).mean(0)
    torch.testing.assert_close(out.logits.exp(), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.alpha, plain.alpha)  # the weights drawn on the image: the unchanged crops'
    assert not torch.allclose(out.logits.exp(), plain.logits.softmax(1), atol=1e-4)


def test_flipping_crops_equals_cutting_regions_from_the_mirrored_face() -> None:
    """Why flip TTA needs no region permutation: RAN's aggregation ignores region order."""
    torch.manual_seed(0)
    model = create_model("ran_compact").eval()
    faces = torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8)
    batcher = RegionBatcher(model.config, augment=None)
    with torch.inference_mode():
        from_crops = model(batcher(faces).flip(-1)).logits
        from_mirror = model(batcher(faces.flip(-1))).logits
    torch.testing.assert_close(from_crops, from_mirror, atol=1e-4, rtol=0)


def test_logit_bias_and_tta_are_saved_and_honoured(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("baseline_compact", tta="flip", logit_bias=[0.0] * 7 + [5.0]).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.tta == "flip" and loaded.config.logit_bias[-1] == 5.0
    x = torch.randn(4, 1, 1, 48, 48)
    with torch.inference_mode():
        got = infer(loaded, x).logits
        p = (loaded(x).logits.softmax(1) + loaded(x.flip(-1)).logits.softmax(1)) / 2
    torch.testing.assert_close(got, p.log() + torch.tensor([0.0] * 7 + [5.0]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="logit_bias"):
        ModelConfig(logit_bias=[1.0, 2.0])
    with pytest.raises(ValueError, match="tta"):
        ModelConfig(tta="five-crop")
    with pytest.raises(ValueError, match="tta"):
        Predictor(tmp_path / "m", detector="haar", tta="rotate")


def test_eval_and_predictor_honour_tta(ferplus_root, tmp_path) -> None:
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    out = {}
    for tta in ("none", "flip", "flip_shift"):
        argv = ["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
        argv += ["--split", "valid", "--out", str(tmp_path / tta), "--workers", "0", "--tta", tta]
        assert cli_main(argv) == 0
        out[tta] = json.loads((tmp_path / tta / "metrics.json").read_text())
        assert out[tta]["tta"] == tta
    rgb = np.full((96, 96, 3), 90, np.uint8)
    rgb[20:70, 10:60] = 200  # asymmetric: the mirror image differs
    det = [Detection((0.0, 0.0, 96.0, 96.0))]
    plain = Predictor(tmp_path / "m", detector="haar").predict_faces(rgb, det)[0].probabilities
    flipped = Predictor(tmp_path / "m", detector="haar", tta="flip").predict_faces(rgb, det)[0].probabilities
    assert not np.allclose(plain, flipped, atol=1e-4)
    shifted = Predictor(tmp_path / "m", detector="haar", tta="flip_shift").predict_faces(rgb, det)[0].probabilities
    assert not np.allclose(shifted, flipped, atol=1e-5)
    # another TTA on the same loaded model and detector (a live camera trading views for speed)
    saved = Predictor(tmp_path / "m", detector="haar", tta="flip_shift")
    fast = saved.with_tta("flip")
    assert fast.model is saved.model and fast.detector is saved.detector and fast.timings is not saved.timings
    assert (fast.tta, saved.tta) == ("flip", "flip_shift")
    np.testing.assert_allclose(fast.predict_faces(rgb, det)[0].probabilities, flipped, atol=1e-6)
    np.testing.assert_allclose(saved.predict_faces(rgb, det)[0].probabilities, shifted, atol=1e-6)
    with pytest.raises(ValueError, match="tta must be one of"):
        saved.with_tta("rotate")


# -------------------------------------------------------------------------------------------- logit adjustment


def _long_tail(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions of a model that learned the prior: it over-predicts the frequent class."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.7, 0.2, 0.1])
    targets = rng.choice(3, size=n, p=prior)
    logits = 1.5 * np.eye(3)[targets] + rng.normal(0, 1, (n, 3)) + np.log(prior)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, targets, prior


def test_fit_tau_trades_little_accuracy_for_rare_classes() -> None:
    probs, targets, prior = _long_tail()
    cal = fit_tau(probs, targets, prior * 1000, max_drop=2.0)
    assert cal.tau > 0
    assert cal.chosen["mean_class_accuracy"] > cal.base["mean_class_accuracy"] + 3
    assert cal.chosen["accuracy"] >= cal.base["accuracy"] - 2.0
    assert cal.bias[2] > cal.bias[1] > cal.bias[0]  # the rarest class gets the largest push
    strict = fit_tau(probs, targets, prior, max_drop=0.0)
    assert strict.chosen["accuracy"] >= strict.base["accuracy"]
    assert len(cal.curve) == 41 and cal.curve[0]["tau"] == 0.0
    with pytest.raises(ValueError, match="positive"):
        fit_tau(probs, targets, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="need"):
        fit_tau(probs[:, :2], targets[:5], prior[:2])


def test_fit_tau_with_a_mean_class_floor_keeps_the_most_accurate_tau_that_reaches_it() -> None:
    probs, targets, prior = _long_tail()
    free = fit_tau(probs, targets, prior, max_drop=2.0)
    floor = (free.base["mean_class_accuracy"] + free.chosen["mean_class_accuracy"]) / 2
    cal = fit_tau(probs, targets, prior, max_drop=2.0, min_mean_class=floor)
    assert cal.chosen["mean_class_accuracy"] >= floor and cal.min_mean_class == floor
    reaching = [
        p for p in cal.curve if p["mean_class_accuracy"] >= floor and p["accuracy"] >= cal.base["accuracy"] - 2.0
    ]
    assert cal.chosen["accuracy"] == max(p["accuracy"] for p in reaching)
    assert cal.chosen["accuracy"] >= free.chosen["accuracy"] and cal.tau < free.tau
    unreachable = fit_tau(probs, targets, prior, max_drop=2.0, min_mean_class=100.0)
    assert unreachable.tau == free.tau  # nothing reaches the floor: the best mean-class accuracy, as without it


def test_calibrate_cli_saves_the_adjusted_model(tmp_path) -> None:
    root = tmp_path / "ferplus"
    make_ferplus(root, "train", [0] * 20 + [1] * 6 + [2, 3, 4, 5, 6, 7], 0)  # a long tail
    make_ferplus(root, "valid", [0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7], 100)
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    out = tmp_path / "adjusted"
    argv = ["calibrate", "--checkpoint", str(tmp_path / "m"), "--dataset", "ferplus", "--data-root", str(root)]
    argv += ["--out", str(out), "--tta", "flip", "--max-drop", "100"]
    assert cli_main(argv) == 0
    cal = json.loads((out / "calibration.json").read_text())
    model = load_model(out)
    assert model.config.tta == "flip"
    assert model.config.provenance["calibration"]["tau"] == cal["tau"]
    assert (model.config.logit_bias is None) == (cal["tau"] == 0)
    assert cal["prior"][0] == pytest.approx(20 / 32)
    assert (out / "calibration.png").stat().st_size > 5000


@pytest.mark.parametrize("fill", ["gray", "black", "mixed"])
def test_erased_rectangles_are_filled_as_asked(fill: str) -> None:
    """A white face erased with certainty: gray fills 0.5, black 0, mixed one of black / gray / noise per face."""
    config = create_model("baseline_compact").config
    x = torch.ones((64, 1, 48, 48))
    aug = AugmentConfig(flip=0, erase=1.0, erase_fill=fill)
    out, _ = RegionBatcher(config, aug, seed=3)._augment(x, None)
    erased = out < 1
    assert erased.flatten(1).any(1).all()  # every face lost a rectangle
    values = [out[i][erased[i]] for i in range(len(out))]
    if fill == "gray":
        assert all(torch.all(v == 0.5) for v in values)
    elif fill == "black":
        assert all(torch.all(v == 0) for v in values)
    else:
        kinds = {"black" if torch.all(v == 0) else "gray" if torch.all(v == 0.5) else "noise" for v in values}
        assert kinds == {"black", "gray", "noise"}
        noisy = next(v for v in values if not torch.all(v == 0) and not torch.all(v == 0.5))
        assert noisy.std() > 0.2  # uniform noise, not a flat value
    with pytest.raises(ValueError, match="erase_fill"):
        AugmentConfig(erase_fill="pink")
    with pytest.raises(ValueError, match="--erase-fill"):
        TrainConfig(data_root="x", erase_fill="pink")
    assert AugmentConfig.preset("strong", fill).erase_fill == fill


def test_covered_parts_are_large_jittered_face_parts() -> None:
    """--occlude-parts covers one listed part per chosen face, edges within the jitter, and no rectangle on top."""
    config = create_model("baseline_compact").config
    x = torch.ones((300, 1, 48, 48))
    aug = AugmentConfig(flip=0, erase=1.0, parts=0.5, erase_fill="black")
    out, _ = RegionBatcher(config, aug, seed=1)._augment(x, None)
    covered = out[:, 0] == 0
    assert covered.flatten(1).any(1).all()  # every face lost a rectangle or a part
    parts = list(PART_OCCLUDERS.values())
    seen = set()
    n_parts = 0
    for mask in covered:
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        box = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / 48
        # one solid box: every pixel inside the bounding box is covered
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        near = [i for i, p in enumerate(parts) if (box - torch.tensor(p)).abs().max() <= PART_JITTER + 1 / 48]
        if near and mask.float().mean() > 0.24:  # a random rectangle covers at most 25 % of the face
            seen.add(near[0])
            n_parts += 1
    assert seen == set(range(len(parts)))  # every kind of part is drawn
    assert 100 < n_parts < 200  # about half the faces
    with pytest.raises(ValueError, match="parts"):
        AugmentConfig(parts=1.5)
    with pytest.raises(ValueError, match="--occlude-parts"):
        TrainConfig(data_root="x", occlude_parts=-0.1)
    with pytest.raises(ValueError, match="--occlude-parts"):
        TrainConfig(data_root="x", occlude_parts=0.3, augment="none")
    assert AugmentConfig.preset("strong", "mixed", 0.3).parts == 0.3


def test_parts_leave_the_random_stream_of_earlier_runs_alone() -> None:
    """Runs without --occlude-parts draw exactly what they drew before the option existed."""
    config = create_model("baseline_compact").config
    x = torch.rand((8, 1, 48, 48), generator=torch.Generator().manual_seed(0))
    a = RegionBatcher(config, AugmentConfig.preset("strong", "mixed"), seed=5)
    b = RegionBatcher(config, AugmentConfig.preset("strong", "mixed", 0.0), seed=5)
    c = RegionBatcher(config, AugmentConfig.preset("strong", "mixed", 0.5), seed=5)
    out_a, _ = a._augment(x, None)
    out_b, _ = b._augment(x, None)
    out_c, _ = c._augment(x, None)
    torch.testing.assert_close(out_a, out_b)
    assert not torch.equal(out_a, out_c)


def test_gray_erasing_draws_the_same_random_stream_as_before() -> None:
    """Adding fills must not change what a gray (default) run draws: resumed and earlier runs stay reproducible."""
    config = create_model("baseline_compact").config
    x = torch.rand((8, 1, 48, 48), generator=torch.Generator().manual_seed(0))
    a = RegionBatcher(config, AugmentConfig.preset("strong"), seed=5)
    b = RegionBatcher(config, AugmentConfig.preset("strong", "black"), seed=5)
    out_a, _ = a._augment(x, None)
    out_b, _ = b._augment(x, None)
    same = out_a == out_b
    assert same.float().mean() > 0.5 and not same.all()  # same geometry, different fill only
    torch.testing.assert_close(a.generator.get_state(), b.generator.get_state())
