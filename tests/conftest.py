"""Shared test setup: offline Hugging Face, quiet tokenizers, a fresh data dir per test."""

from __future__ import annotations

import os

# Set before anything imports transformers/huggingface_hub: every hub miss otherwise
# costs ~36 s of retries on a machine without internet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
