"""Shared test set-up: markers for GPU and slow tests, skipped with their reason shown."""

from __future__ import annotations

import pytest

from tests.helpers import cuda_device


@pytest.fixture(autouse=True, scope="session")
def _engine_cache_per_session(tmp_path_factory):
    """Engines built by tests go to a fresh cache folder: a test that builds must build, not find last run's
    engine, and the user's ~/.cache/trtnet stays untouched."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRTNET_CACHE_DIR", str(tmp_path_factory.mktemp("trtnet-cache")))
    yield
    mp.undo()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped, with the reason, where there is none")
    config.addinivalue_line(
        "markers",
        "slow: about 30 s or more on 2 cores; `make test-fast` (pytest -m 'not slow') "
        "leaves these out, `make test` runs them",
    )


def pytest_collection_modifyitems(config, items) -> None:
    if cuda_device() is None:
        skip = pytest.mark.skip(reason="needs a CUDA GPU: cuda-python found no CUDA device on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
