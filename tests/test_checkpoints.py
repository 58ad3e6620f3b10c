"""Checkpoints: atomic, plain data only, weights_only loading, one-line errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from aegis_tui.policy import checkpoints
from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from aegis_tui.policy.hrm import HRMConfig, build_model

SMALL = HRMConfig(d_model=32, n_heads=2, expansion=2.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def model():  # -> HRM
    return build_model(SMALL, seed=0)


def _tokens() -> torch.Tensor:
    return torch.randint(0, SMALL.vocab_size, (3, SMALL.seq_len),
                         generator=torch.Generator().manual_seed(0))


def test_round_trip(tmp_path: Path, model) -> None:
    path = tmp_path / "ckpt" / "hrm.pt"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_tokens())[0].sum().backward()
    opt.step()
    save_checkpoint(path, model, meta={"epoch": 5, "val_accuracy": 0.9, "tags": ["a", 1]},
                    optimizer_state=opt.state_dict(), extra={"rl": {"updates": 3}})
    loaded = load_checkpoint(path)
    assert loaded.config == SMALL
    assert loaded.meta["epoch"] == 5 and loaded.meta["val_accuracy"] == 0.9
    assert isinstance(loaded.meta["created"], float)
    assert loaded.extra == {"rl": {"updates": 3}}
    again = loaded.build_model()
    with torch.inference_mode():
        assert torch.equal(again(_tokens())[0], model(_tokens())[0])
    opt2 = torch.optim.AdamW(again.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded.optimizer_state)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("cut", [0, 10, 0.5, -20])
def test_truncated_file(tmp_path: Path, model, cut: float) -> None:
    path = tmp_path / "hrm.pt"
    save_checkpoint(path, model, meta={})
    data = path.read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else
                                                               len(data) + cut)
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "hrm.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"corrupt|truncated|not"):
        load_checkpoint(path)
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):  # runs os.system on an unsafe load
        return (os.system, ("touch pwned-by-checkpoint",))


def test_pickled_code_is_refused_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         model) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    payload = {"format": checkpoints.FORMAT, "format_version": 1,
               "model_config": SMALL.to_dict(), "state_dict": model.state_dict(),
               "meta": {"x": _Evil()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def _save_raw(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(buf.getvalue())


def _payload(model, **changes: object) -> dict:
    base = {"format": checkpoints.FORMAT, "format_version": checkpoints.FORMAT_VERSION,
            "model_config": SMALL.to_dict(), "state_dict": dict(model.state_dict()),
            "meta": {}, "optimizer_state": None, "extra": {}}
    base.update(changes)
    return base


def test_newer_format_version(tmp_path: Path, model) -> None:
    path = tmp_path / "hrm.pt"
    _save_raw(path, _payload(model, format_version=checkpoints.FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)


def test_mismatched_shapes_and_keys(tmp_path: Path, model) -> None:
    path = tmp_path / "hrm.pt"
    state = dict(model.state_dict())
    state["policy_head.weight"] = torch.zeros(5, SMALL.d_model)
    _save_raw(path, _payload(model, state_dict=state))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)
    state = dict(model.state_dict())
    del state["value_head.bias"]
    _save_raw(path, _payload(model, state_dict=state))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)
    # The config says one size, the tensors another.
    _save_raw(path, _payload(model, model_config=HRMConfig(d_model=64, n_heads=2).to_dict()))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)


def test_bad_config_and_foreign_file(tmp_path: Path, model) -> None:
    path = tmp_path / "hrm.pt"
    _save_raw(path, _payload(model, model_config={**SMALL.to_dict(), "bogus": 1}))
    with pytest.raises(CheckpointError, match="model config"):
        load_checkpoint(path)
    _save_raw(path, {"weights": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="not an aegis-tui"):
        load_checkpoint(path)
    state = dict(model.state_dict())
    state["policy_head.bias"] = torch.full((4,), float("nan"))
    _save_raw(path, _payload(model, state_dict=state))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_meta_must_be_plain(tmp_path: Path, model) -> None:
    with pytest.raises(CheckpointError, match="plain data"):
        save_checkpoint(tmp_path / "x.pt", model, meta={"path": Path("/tmp")})
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(tmp_path / "x.pt", model, meta={"acc": float("nan")})
    assert not (tmp_path / "x.pt").exists()


def test_failed_write_keeps_old_file(tmp_path: Path, model,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hrm.pt"
    save_checkpoint(path, model, meta={"epoch": 1})
    before = path.read_bytes()

    def boom(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CheckpointError, match="No space"):
        save_checkpoint(path, model, meta={"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["hrm.pt"]


def test_checkpoint_from_another_feature_version_is_refused(tmp_path):
    import dataclasses

    from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
    from aegis_tui.policy.features import FEATURE_VERSION
    from aegis_tui.policy.hrm import HRM, HRMConfig

    old = HRMConfig(feature_version=FEATURE_VERSION + 1)
    path = tmp_path / "old.pt"
    save_checkpoint(path, HRM(dataclasses.replace(old)), meta={})
    with pytest.raises(CheckpointError, match="features version"):
        load_checkpoint(path)
