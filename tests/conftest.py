"""Shared fixtures: repository paths, a clean per-test state dir, the Click runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
INVENTORIES = REPO / "tests" / "inventories"


@pytest.fixture(scope="session")
def _jinja_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jinja")


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch, _jinja_cache):
    """Run artifacts and caches of the CLI go to a temporary folder, never to the user's home (the plays' compiled
    templates to one folder per test session)."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("SOLV_JINJA_CACHE", str(_jinja_cache))
    return state


@pytest.fixture
def cli():
    from solv_provision.cli import main

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
