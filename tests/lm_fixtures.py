"""Shared fixtures for the LM teacher tests: a tiny local GPT-2 built once, and no network.

Import the fixtures you use from this module (``from lm_fixtures import tiny_lm_dir``); the
model is built once per test session however many modules import it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aegis_tui.policy.local_lm import build_local_gpt2

_built: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a random-weight tiny GPT-2 and its tokenizer (read-only for tests)."""
    if "tiny" not in _built:
        _built["tiny"] = build_local_gpt2(tmp_path_factory.mktemp("lm") / "tiny-gpt2", seed=0)
    return _built["tiny"]


class NetworkBlocked(OSError):
    """Raised by any attempt to open a connection while ``no_network`` is active."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make every connection attempt fail at once; returns the list of attempted addresses."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args[1] if len(args) > 1 else args)
        raise NetworkBlocked("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, *a))
    return attempts


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, so a model cached on this machine cannot satisfy a test."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache
