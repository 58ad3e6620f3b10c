"""``--device``: auto/cpu/cuda/mps, a one-line error for a device that is not here, and the
headless run with an LM teacher of each family on the CPU (where the tests run; nothing
here needs a GPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from headless import cli_in_process, one_line_error

from aegis_tui.policy.devices import DeviceUnavailable, Placement, resolve_device
from aegis_tui.policy.local_lm import build_local_lm
from aegis_tui.training.example_log import read_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_built: dict[str, Path] = {}


def _model(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if arch not in _built:
        _built[arch] = build_local_lm(tmp_path_factory.mktemp("lm") / f"tiny-{arch}", arch=arch)
    return _built[arch]


def _no_gpu() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


needs_no_gpu = pytest.mark.skipif(not _no_gpu(), reason="this machine has a GPU")


def test_cpu_is_float32() -> None:
    assert resolve_device("cpu") == Placement("cpu", "float32")
    assert resolve_device("cpu").label == "cpu (float32)"


@needs_no_gpu
def test_auto_without_a_gpu_is_the_cpu() -> None:
    assert resolve_device("auto") == Placement("cpu", "float32")


@needs_no_gpu
@pytest.mark.parametrize(("device", "needle"), [
    ("cuda", "CUDA is not available"),
    ("mps", "MPS is not available"),
])
def test_a_missing_device_is_one_clear_line(device: str, needle: str) -> None:
    with pytest.raises(DeviceUnavailable) as info:
        resolve_device(device)
    message = str(info.value)
    assert needle in message and "--device cpu" in message and "\n" not in message


def test_gpu_placements_use_half_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_device("auto") == Placement("cuda", "bfloat16", "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cuda = resolve_device("cuda")
    assert cuda == Placement("cuda", "float16", "Test GPU")
    assert cuda.label == "cuda (float16, Test GPU)" and cuda.dtype(torch) is torch.float16


@needs_no_gpu
@pytest.mark.parametrize("teacher", ["lm", "auto"])
def test_run_with_device_cuda_here_is_a_one_line_error(
        teacher: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _model("gpt2", tmp_path_factory)
    code, _, err = cli_in_process(capsys, "run", "--headless", "--quiet", "--world", "sim",
                                  "--teacher", teacher, "--teacher-model", str(folder),
                                  "--device", "cuda", "--iterations", "2",
                                  "--data-dir", str(data_dir))
    assert code == 2
    line = one_line_error(err)
    assert "--device cuda: CUDA is not available" in line
    assert not (data_dir / "hrm_training_data.msgpack").exists() or not read_examples(
        data_dir / "hrm_training_data.msgpack").count  # nothing ran, nothing was lost


@pytest.mark.parametrize("arch", ["gpt2", "llama", "chat"])
def test_headless_run_with_each_family_on_the_cpu(
        arch: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _model(arch, tmp_path_factory)
    code, out, err = cli_in_process(capsys, "run", "--headless", "--world", "sim",
                                    "--teacher", "lm", "--teacher-model", str(folder),
                                    "--device", "cpu", "--think-interval", "0",
                                    "--iterations", "6", "--data-dir", str(data_dir))
    assert code == 0, err
    assert f"teacher: tiny-{arch} (" in out and "on cpu (float32)" in out
    if arch == "chat":
        assert ", chat template" in out
    assert f"by tiny-{arch}:" in out  # the LM decided the iterations
    examples = read_examples(data_dir / "hrm_training_data.msgpack").examples
    assert len(examples) == 6
    # Which model labelled them is in the examples (a folder has no commit).
    assert {(e.policy, e.teacher_model, e.teacher_revision) for e in examples} == {
        (f"tiny-{arch}", str(folder), "")}
    code, out, _ = cli_in_process(capsys, "status", "--json", "--data-dir", str(data_dir))
    status = json.loads(out)
    assert status["teacher"] == f"tiny-{arch}" and status["teacher_device"] == "cpu (float32)"
    code, out, _ = cli_in_process(capsys, "status", "--data-dir", str(data_dir))
    assert f"Teacher:         tiny-{arch} on cpu (float32)" in out
    code, out, _ = cli_in_process(capsys, "export", "--data-dir", str(data_dir))
    doc = json.loads(out)
    assert doc["metadata"]["teacher_models"] == [
        {"model": str(folder), "revision": None, "examples": 6}]
    assert doc["examples"][0]["teacher_model"] == str(folder)


@needs_no_gpu
def test_bench_decide_on_cuda_here_is_a_one_line_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli_in_process(capsys, "bench", "--only", "decide", "--device", "cuda")
    assert code == 2
    assert "--device cuda: CUDA is not available" in one_line_error(err)


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 2), (4, 3), (8, 4),
                                                (64, 4)])
def test_auto_threads_leave_a_core_and_stop_at_four(cores: int, threads: int) -> None:
    from aegis_tui.policy.torch_threads import auto_threads

    assert auto_threads(cores) == threads


def test_thread_count_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    from aegis_tui.policy import torch_threads

    monkeypatch.setattr(torch_threads, "auto_threads", lambda cores=None: 3)
    monkeypatch.delenv("AEGIS_TORCH_THREADS", raising=False)
    assert torch_threads.wanted_threads(0, teacher=True) == 3
    assert torch_threads.wanted_threads(0) == 1  # the HRM alone: one thread
    monkeypatch.setenv("AEGIS_TORCH_THREADS", "2")
    assert torch_threads.wanted_threads(0, teacher=True) == 2
    assert torch_threads.wanted_threads(5, teacher=True) == 5  # the setting wins
    monkeypatch.setenv("AEGIS_TORCH_THREADS", "lots")
    assert torch_threads.wanted_threads(0, teacher=True) == 3  # junk is ignored


def test_a_folder_with_a_pinned_revision_is_refused(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from aegis_tui.policy.lm_teacher import LMTeacher, TeacherLoadError

    with pytest.raises(TeacherLoadError, match="pins a hub model"):
        LMTeacher.load(str(_model("gpt2", tmp_path_factory)), timeout_s=60, revision="v1.0")
