"""The dashboard's tools: the screenshot, the latency probe, key remaps, the launcher."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aegis_tui.ui.harness import prepare_data_dir, sim_config
from aegis_tui.ui.latency_probe import measure_key_latency
from aegis_tui.ui.launch import KeymapError, load_keymap, run_dashboard
from aegis_tui.ui.screenshot import render_screenshot, stored_config


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_screenshot_renders_an_svg_and_leaves_the_data_dir_alone(tmp_path: Path) -> None:
    paths = prepare_data_dir(tmp_path / "data", 40)
    before = {p.name: _digest(p) for p in paths.root.iterdir() if p.is_file()}
    out = render_screenshot(paths.root, tmp_path / "shot" / "dashboard.svg", size=(100, 30))
    svg = out.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "Phase&#160;1" in svg
    after = {p.name: _digest(p) for p in paths.root.iterdir() if p.is_file()}
    assert after == before
    assert stored_config(paths).world == "sim" and stored_config(paths).teacher == "rules"


def test_screenshot_of_a_directory_without_an_agent_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no agent database"):
        render_screenshot(tmp_path, tmp_path / "x.svg")


def test_latency_probe_returns_one_measurement_per_press(tmp_path: Path) -> None:
    values = measure_key_latency(4, tmp_path, training=False)
    assert len(values) == 4 and all(v > 0 for v in values)
    with pytest.raises(ValueError):
        measure_key_latency(0, tmp_path)


def test_keymap_file(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    assert load_keymap(path) == {}
    path.write_text('pause = "ctrl+p, f5"\nanswer = "ctrl+a"\n', encoding="utf-8")
    assert load_keymap(path) == {"pause": "ctrl+p,f5", "answer": "ctrl+a"}
    path.write_text('paws = "x"\n', encoding="utf-8")
    with pytest.raises(KeymapError, match="'paws' is not a binding id"):
        load_keymap(path)
    path.write_text("pause = 3\n", encoding="utf-8")
    with pytest.raises(KeymapError, match="pause must be a key"):
        load_keymap(path)
    path.write_text("pause = \n", encoding="utf-8")
    with pytest.raises(KeymapError, match="not valid TOML"):
        load_keymap(path)


def test_run_dashboard_without_a_terminal_points_to_headless(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aegis_tui.paths import DataPaths

    code = run_dashboard(sim_config(), DataPaths.resolve(tmp_path), None)
    assert code == 2
    assert "needs a terminal" in capsys.readouterr().err
