"""Graceful stop on SIGINT / SIGTERM: the loop finishes its step, saves a checkpoint and exits.

    with StopSignal() as stop:
      for step in ...:
        ...                       # a signal only sets the flag
        if stop.requested: save(); break

A second SIGINT while a stop is pending raises KeyboardInterrupt (the user insists). The previous
handlers are restored on exit. Handlers can only be installed from the main thread; elsewhere
(e.g. a test runner thread) the object is inert and `requested` stays False unless `request()`
is called.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
  """Records SIGINT/SIGTERM instead of dying (module docstring)."""

  def __init__(self) -> None:
    self.requested = False
    self.signal_name: str | None = None
    self._previous: dict[int, Any] = {}

  def request(self, name: str = "request") -> None:
    """Asks the loop to stop after the current step (as a signal does)."""
    self.requested = True
    self.signal_name = name

  def _handle(self, signum: int, frame: Any) -> None:
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning("received %s: finishing the step, saving a checkpoint, then exiting",
                    signal.Signals(signum).name)
    self.request(signal.Signals(signum).name)

  def __enter__(self) -> StopSignal:
    if threading.current_thread() is threading.main_thread():
      for sig in SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
