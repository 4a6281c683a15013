"""A call run beside the main thread, for work that waits without the GIL (a database, a file)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Aside(Generic[T]):
    """A call run in a daemon thread of its own: the process does not wait for it to exit
    (Ctrl-C), and `result()` waits for it or raises what it raised."""

    def __init__(self, call: Callable[..., T], *args: object, **kwargs: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call, args, kwargs), daemon=True)
        self._thread.start()

    def _run(
        self, call: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        try:
            self._value = call(*args, **kwargs)
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)
