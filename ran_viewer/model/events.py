"""A Qt-free signal (napari's ``EventEmitter`` in miniature): the state objects of :mod:`ran_viewer.model` announce
changes through it, widgets and tests connect to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Event:
    """A Qt-free signal: ``connect`` callbacks, ``emit`` calls them synchronously in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback(*args)`` on every emit; returns the callback so this works as a decorator."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Remove one callback, or all of them."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every connected callback with ``args``."""
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args)

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Suppress emits inside the ``with`` block."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._callbacks)
