"""Fixtures shared by several test files."""

from __future__ import annotations

import contextlib
import threading

import pytest


@pytest.fixture
def held_elsewhere():
    """``with held_elsewhere(folder): ...``: the block runs while another thread holds
    :func:`adatok.core.imageio.folder_lock` on ``folder`` (another holder, as another process is)."""
    from adatok.core.imageio import folder_lock

    @contextlib.contextmanager
    def hold(folder):
        held, release = threading.Event(), threading.Event()

        def other():
            with folder_lock(folder, "x"):
                held.set()
                release.wait(30)

        thread = threading.Thread(target=other)
        thread.start()
        assert held.wait(10)
        try:
            yield
        finally:
            release.set()
            thread.join(10)

    return hold
