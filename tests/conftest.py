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



@pytest.fixture
def sigint_at_call(monkeypatch):
    """``sigint_at_call(owner, name, n)`` patches ``owner.name`` so that its ``n``-th call, once done,
    sends this process a real SIGINT (what Ctrl-C does): an interrupt landing where that call ends, as
    a person's would."""
    import os
    import signal

    def patch(owner, name: str, n: int) -> None:
        real, calls = getattr(owner, name), []

        def signalled(*args, **kwargs):
            out = real(*args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        monkeypatch.setattr(owner, name, signalled)

    return patch
