"""Shared test fixtures: paths to the bundled real mocap (tests/data/mocap)."""
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "mocap"


@pytest.fixture(scope="session")
def mocap_dir() -> Path:
    return DATA
