"""The stop request of a training session: SIGTERM/SIGINT (or a caller)
set it, and the session checkpoints and ends cleanly."""

import signal
import threading
from typing import Optional


class StopFlag:
  """Set by SIGTERM/SIGINT; the loop checkpoints and exits cleanly.

  `signum` and `signal_name` say which signal set it (None when set
  otherwise); the trainer exits with 128 + `signum`. `event` is what the
  actors watch: the actor pool sets it when it stops them.
  """

  def __init__(self) -> None:
    self.event = threading.Event()
    self.signum: Optional[int] = None
    self.signal_name: Optional[str] = None

  def install(self) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    self.signal_name = signal.Signals(signum).name
    self.event.set()

  def is_set(self) -> bool:
    return self.event.is_set()
