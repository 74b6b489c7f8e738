"""Work on copies of variables in a background thread, one copy at a time.

The learner must not wait for what is done with its weights (sending them
to the actors, evaluating them): it pays only for the copy, one
`tf.function` call that reads every variable, and a thread of its own does
the rest. There is one slot: while a copy is being worked on, the next one
is refused rather than queued, since by its turn it would be stale, and
copies never pile up behind slow work. `weights.Publisher` and
`training.greedy_eval.PeriodicEvaluator` are the two users.
"""

import threading
from typing import Any, List, Optional, Sequence

import tensorflow as tf


class SnapshotWorker(threading.Thread):
  """A daemon thread that calls `work(tag, tensors)` on each snapshot that
  `hand_over` took.

  Args:
    variables: the variables to copy.
    name: the thread's name.
    what: names the work in the error `raise_if_failed` raises.
    finish_pending: whether `close` still works on a snapshot taken but
      not started yet (else it is dropped; one under way always finishes).
  """

  def __init__(self, variables: Sequence[tf.Variable], name: str, what: str,
               finish_pending: bool) -> None:
    super().__init__(name=name, daemon=True)
    # One dispatch copies every variable, instead of one per `v.numpy()`.
    self._snapshot = tf.function(lambda: [tf.identity(v) for v in variables],
                                 autograph=False)
    self._what = what
    self._finish_pending = finish_pending
    self._cond = threading.Condition()
    self._pending = None
    self._busy = False
    self._closed = False
    self.error: Optional[BaseException] = None

  def work(self, tag: Any, tensors: List[tf.Tensor]) -> None:
    """What is done with a snapshot (in the thread); an error ends the
    thread and is raised by the next `raise_if_failed`."""
    raise NotImplementedError

  def raise_if_failed(self) -> None:
    """Raises RuntimeError (from the work's error) once `work` failed."""
    if self.error is not None:
      raise RuntimeError(f"{self._what} failed") from self.error

  def hand_over(self, tag: Any) -> bool:
    """Snapshots the variables for `work(tag, ...)` unless the previous
    snapshot is still pending or under way; returns whether it did."""
    with self._cond:
      if self._busy:
        return False
      self._busy = True
      self._pending = (tag, self._snapshot())
      self._cond.notify()
    return True

  def run(self) -> None:
    while True:
      with self._cond:
        while self._pending is None and not self._closed:
          self._cond.wait()
        if self._pending is None or (self._closed and
                                     not self._finish_pending):
          return
        tag, tensors = self._pending
        self._pending = None
      try:
        self.work(tag, tensors)
      except BaseException as e:  # pylint: disable=broad-except
        self.error = e
        return
      finally:
        with self._cond:
          self._busy = False

  def close(self, timeout_s: float = 10.0) -> bool:
    """Ends the thread after the work under way (and, with
    `finish_pending`, the snapshot pending), waiting up to `timeout_s`;
    returns False if it still runs (a daemon, it does not keep the process
    alive)."""
    with self._cond:
      self._closed = True
      self._cond.notify()
    if self.is_alive():
      self.join(timeout_s)
    return not self.is_alive()
