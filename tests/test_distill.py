"""Knowledge distillation (``ran-core train --teacher``): the targets mix, the teachers' probabilities, and that the
teachers read exactly the augmented faces the student trains on."""

from __future__ import annotations

import pytest
import torch
from ferplus_fixtures import train_config as _cfg

from ran_core import create_model, load_model, save_model
from ran_core.cli import main as cli_main
from ran_core.data.pipeline import AugmentConfig, RegionBatcher
from ran_core.engine.distill import Teacher, match_channels, mix_targets
from ran_core.engine.trainer import TrainConfig, Trainer
from ran_core.models import infer


def test_mix_targets_for_hard_and_soft_labels() -> None:
    teacher = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    mixed = mix_targets(torch.tensor([1, 0]), teacher, 0.4)
    torch.testing.assert_close(mixed, torch.tensor([[0.2, 0.7, 0.1], [0.64, 0.04, 0.32]]))
    soft = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(mix_targets(soft, teacher, 1.0), teacher)
    torch.testing.assert_close(mix_targets(soft, teacher, 0.5).sum(1), torch.ones(2))


def test_match_channels() -> None:
    gray = torch.rand(2, 1, 8, 8)
    assert torch.equal(match_channels(gray, 1), gray)
    rgb = match_channels(gray, 3)
    assert rgb.shape == (2, 3, 8, 8) and torch.equal(rgb[:, 2], gray[:, 0])
    torch.testing.assert_close(match_channels(rgb, 1), gray)  # luma weights sum to one
    with pytest.raises(ValueError, match="2-channel"):
        match_channels(torch.rand(1, 2, 4, 4), 3)


def test_batcher_call_is_augment_then_crop() -> None:
    config = create_model("ran_compact").config
    images = torch.randint(0, 256, (6, 1, 48, 48), dtype=torch.uint8)
    aug = AugmentConfig.preset("strong", "mixed")
    whole = RegionBatcher(config, aug, seed=5)(images)
    split = RegionBatcher(config, aug, seed=5)
    assert torch.equal(whole, split.crop(*split.augment_faces(images)))


def _saved(tmp_path, name: str, bias: list[float] | None = None, **kw):
    torch.manual_seed(len(name))
    model = create_model(name, **kw).eval()
    model.config.logit_bias = bias
    save_model(model, tmp_path / name)
    return tmp_path / name


def test_teacher_averages_its_models_probabilities_without_their_logit_bias(tmp_path) -> None:
    bias = [3.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    ran = _saved(tmp_path, "ran_compact", bias, tta="flip")
    base = _saved(tmp_path, "baseline_compact")
    classes = create_model("ran_compact").config.class_names
    teacher = Teacher([str(ran), str(base)], classes, torch.device("cpu"))
    assert "flip" in teacher.describe()
    faces = torch.rand(4, 1, 48, 48)
    got = teacher(faces)
    expected = 0
    for path in (ran, base):
        m = load_model(path)
        m.config.logit_bias = None
        expected = expected + infer(m, RegionBatcher(m.config).crop(faces)).logits.exp()
    torch.testing.assert_close(got, expected / 2)
    torch.testing.assert_close(got.sum(1), torch.ones(4))
    assert load_model(ran).config.logit_bias == bias  # the saved model itself is untouched


def test_teacher_refuses_other_classes_unreadable_models_and_landmarks_it_cannot_get(tmp_path) -> None:
    other = _saved(tmp_path, "baseline_compact", class_names=["a", "b", "c"])
    classes = create_model("ran_compact").config.class_names
    with pytest.raises(ValueError, match="same classes"):
        Teacher([str(other)], classes, torch.device("cpu"))
    (tmp_path / "weights.pt").write_bytes(b"not ours")
    with pytest.raises(ValueError, match="--teacher .*never loaded"):
        Teacher([str(tmp_path / "weights.pt")], classes, torch.device("cpu"))
    lm = _saved(tmp_path, "ran_compact", regions={"scheme": "landmark"})
    with pytest.raises(ValueError, match="--regions landmark"):
        Teacher([str(lm)], classes, torch.device("cpu"))
    Teacher([str(lm)], classes, torch.device("cpu"), student_landmarks=True)  # a landmark student's batches have them
    with pytest.raises(ValueError, match="teacher-weight"):
        TrainConfig(data_root="x", teacher=["m"], teacher_weight=0.0)
    assert TrainConfig(data_root="x", teacher="m").teacher == ["m"]


class _WatchedTrainer(Trainer):
    """Records, for every step, the faces the student's crops were cut from, what the teacher read and returned, and
    the targets the loss got."""

    def _setup(self) -> None:
        super()._setup()
        self.seen: list[dict[str, torch.Tensor]] = []
        crop, teacher, criterion = self.batcher.crop, self.teacher, self.criterion

        def student_crop(faces, lm=None):
            self.seen.append({"student_faces": faces.clone()})
            return crop(faces, lm)

        def watched_teacher(faces, lm=None):
            probs = teacher(faces, lm)
            self.seen[-1].update(teacher_faces=faces.clone(), teacher_probs=probs.clone())
            return probs

        def watched_criterion(out, target):
            self.seen[-1]["target"] = target.clone()
            return criterion(out, target)

        self.batcher.crop = student_crop
        self.teacher = watched_teacher
        self.criterion = watched_criterion


def test_training_with_a_teacher_uses_its_probabilities_on_the_same_augmented_faces(ferplus_root, tmp_path) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "base", model="baseline", epochs=1)).run()
    cfg = _cfg(
        ferplus_root,
        tmp_path / "ran",
        epochs=1,
        augment="strong",
        erase_fill="mixed",
        teacher=[str(tmp_path / "base")],
        teacher_weight=1.0,
    )
    trainer = _WatchedTrainer(cfg)
    trainer.run()
    assert len(trainer.seen) == 3  # 24 faces, batches of 8
    for step in trainer.seen:
        assert torch.equal(step["teacher_faces"], step["student_faces"])  # consistent teaching
        torch.testing.assert_close(step["target"], step["teacher_probs"])  # weight 1: the teacher alone
        assert not torch.allclose(step["teacher_probs"], step["teacher_probs"][:1])  # a real, per-face answer
    provenance = load_model(tmp_path / "ran").config.provenance
    assert provenance["teacher"] == {"models": [str(tmp_path / "base")], "weight": 1.0}


def test_train_cli_teacher_flags(ferplus_root, tmp_path, capsys) -> None:
    common = ["train", "--dataset", "ferplus", "--data-root", str(ferplus_root), "--epochs", "1", "--batch-size", "8"]
    common += ["--amp", "off", "--cache", "memory", "--eval-batch-size", "16", "--recipe", "modern"]
    rc = cli_main([*common, "--teacher", str(tmp_path / "missing"), "--out", str(tmp_path / "r1")])
    err = capsys.readouterr().err
    assert rc == 2 and "--teacher" in err and "model not found" in err
    assert cli_main([*common, "--teacher", "m", "--teacher-weight", "1.5", "--out", str(tmp_path / "r2")]) == 2
    assert "teacher-weight" in capsys.readouterr().err
