"""Shared test setup: offline Hugging Face, quiet tokenizers, a fresh data dir per test."""

from __future__ import annotations

import os

# Set before anything imports transformers/huggingface_hub: every hub miss otherwise
# costs ~36 s of retries on a machine without internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread for a module's tests (opt in with ``usefixtures``).

    Small matrices gain little from a second thread, and on a busy 2-core CI machine two
    OpenMP threads per pass made small-model tests wait on each other (medians measured
    20x slower than with one thread).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
