"""The start-up check that explains, before Qt aborts the process, why no window can open (Qt-free)."""

from __future__ import annotations

import sys

import pytest

from ran_viewer._env import qt_platform_problem

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is for Linux/X11")


def _all_found(name: str) -> str:
    return f"lib{name}.so"


def test_nothing_to_report_with_a_display_and_the_libraries() -> None:
    assert qt_platform_problem({"DISPLAY": ":0"}, _all_found) is None


def test_no_display_is_certain_to_fail_and_says_what_to_do() -> None:
    problem = qt_platform_problem({}, _all_found)
    assert problem is not None and problem.certain
    assert "DISPLAY" in problem.message and "xvfb-run" in problem.message and "offscreen" in problem.message


def test_missing_xcb_libraries_are_named_with_their_packages() -> None:
    def lookup(name: str) -> str | None:
        return None if name in ("xcb-icccm", "xcb-keysyms") else _all_found(name)

    problem = qt_platform_problem({"DISPLAY": ":1"}, lookup)
    assert problem is not None and not problem.certain  # Qt may still find them: warn, do not refuse
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in problem.message
    assert "libxcb-cursor0" not in problem.message


@pytest.mark.parametrize("env", [{"QT_QPA_PLATFORM": "offscreen"}, {"WAYLAND_DISPLAY": "wayland-0"}])
def test_other_platforms_are_not_second_guessed(env: dict[str, str]) -> None:
    assert qt_platform_problem(env, lambda name: None) is None


def test_cli_exits_cleanly_without_a_screen(monkeypatch, capsys) -> None:
    from ran_viewer import app

    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    assert app.main([]) == 1
    assert "no screen" in capsys.readouterr().err
