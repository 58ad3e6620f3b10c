"""A teacher model that does not load, through the CLI: a clear line and the documented fall-back.

``--teacher lm`` stops with one line naming the model and the reason and the way out;
``--teacher auto`` (the default) runs on the rules heuristic and says why in its first lines.
The factory's own tests cover each reason; these check what a user sees.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.headless import cli_in_process, one_line_error
from tests.lm_fixtures import tiny_lm_dir  # noqa: F401 - a fixture

RUN = ["run", "--headless", "--quiet", "--world", "sim", "--think-interval", "0",
       "--iterations", "3"]


def _broken(kind: str, tmp_path: Path, tiny: Path) -> tuple[Path, str]:
    """A path that is not a usable model, and what the reason must say."""
    if kind == "missing":
        return tmp_path / "no-such-model", "does not exist"
    if kind == "file":
        path = tmp_path / "model.bin"
        path.write_bytes(os.urandom(4096))
        return path, "is a file, not a model folder"
    if kind == "bad config":
        path = tmp_path / "bad-config"
        path.mkdir()
        (path / "config.json").write_text('{"model_type": ', encoding="utf-8")
        return path, "config.json is not valid JSON"
    path = tmp_path / "garbage-weights"
    shutil.copytree(tiny, path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    return path, "SafetensorError"


@pytest.mark.parametrize("kind", ["missing", "file", "bad config", "garbage weights"])
def test_a_model_that_does_not_load(kind: str, tmp_path: Path, capsys,
                                    tiny_lm_dir: Path) -> None:  # noqa: F811
    model, reason = _broken(kind, tmp_path, tiny_lm_dir)
    data = tmp_path / "data"
    code, _, err = cli_in_process(capsys, *RUN, "--teacher", "lm", "--teacher-model",
                                  str(model), "--data-dir", str(data))
    assert code == 1
    line = one_line_error(err)
    assert line.startswith("aegis-tui: error: the teacher model")
    assert "could not be loaded: " in line and str(model) in line and reason in line
    assert line.endswith("(use --teacher rules, or --teacher auto to fall back automatically)")
    assert not (data / "hrm_training_data.msgpack").stat().st_size, "nothing ran"

    code, out, err = cli_in_process(capsys, *RUN, "--teacher", "auto", "--teacher-model",
                                    str(model), "--data-dir", str(data))
    assert code == 0, err
    notice = next(x for x in out.splitlines() if "INFO teacher: " in x)
    assert f"teacher: rules (could not load {model}: " in notice and reason in notice
    assert "Teacher:         rules" in out
