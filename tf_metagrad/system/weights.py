"""Learner -> actor weight transport through the Reverb "weights" table.

dm-reverb 0.14's `Client.sample` and `Client.insert` take no timeout: a
sample issued after the server went away blocks forever in the sampler, and
a Python signal handler never runs while the main thread is inside it. So
every Reverb call here is bounded: inserts go through a trajectory writer
flushed with a timeout, and a sample runs in a daemon worker thread that the
caller waits for in short slices (re-checking `should_stop`, so signals are
handled) up to a deadline.

Each publish writes the weights item and, in the same flush, a tiny item of
the "weights_version" table holding only its version. An actor reads that
version first (`latest_version`, 8 bytes) and samples the weights (about
5 MB for the Atari preset's ResNet) only when it differs from the version
it holds (`system.reverb_actor`). The two tables are separate, so the server may
insert the version item before or after the weights item: the version an
actor records is always the one stored inside the weights item it sampled,
and a version read ahead of the weights costs at most one extra fetch.
"""

import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad.system import server as server_lib
from tf_metagrad.system import snapshots


class ServerUnavailableError(RuntimeError):
  """The Reverb server did not answer within the allowed time."""


def publish(client: reverb.Client, variables: Sequence[tf.Variable],
            version: int, timeout_s: float = 30.0) -> None:
  """Replaces the weights item by the current values of `variables`."""
  _insert_weights(client, version, [v.numpy() for v in variables], timeout_s)


def insert(client: reverb.Client, table: str, data: Any, timeout_s: float,
           what: str) -> None:
  """Inserts `data` as the one-step item of `table`, bounded in time.

  Raises:
    ServerUnavailableError: if the insert did not complete in `timeout_s`
      (`what` names it in the message).
  """
  _write(client, lambda writer: server_lib.append_item(writer, table, data),
         timeout_s, what)


def _write(client, append, timeout_s, what):
  """Runs `append(writer)` on a new trajectory writer and flushes it within
  `timeout_s` (see the module docstring)."""
  writer = client.trajectory_writer(num_keep_alive_refs=1)
  try:
    append(writer)
    writer.flush(timeout_ms=max(1, int(timeout_s * 1000)))
  except reverb.errors.DeadlineExceededError:
    raise ServerUnavailableError(
        f"{what} did not complete within {timeout_s}s (is the Reverb "
        f"server gone?)") from None
  finally:
    writer.close()


def _insert_weights(client, version, arrays, timeout_s):
  def append(writer):
    server_lib.append_item(writer, server_lib.WEIGHTS_TABLE,
                           (np.int64(version), arrays))
    # The version item references the version column only, so sampling it
    # moves 8 bytes, not the weights' chunks.
    writer.create_item(server_lib.WEIGHTS_VERSION_TABLE, priority=1.0,
                       trajectory=writer.history[0][-1])

  _write(client, append, timeout_s, f"publishing weights version {version}")


class Publisher(snapshots.SnapshotWorker):
  """Publishes weight snapshots from a background thread.

  The learner calls `offer` after its steps; the Reverb insert happens here,
  off the learner's critical path. Inserts are not free: serialising and
  compressing the 1.4 MB of STAC's Catch network took 3 ms of CPU (and the
  GIL) per insert, a tenth of a 30 ms learner step on 2 cores, while an
  actor fetches new weights only once per unroll (several learner steps).
  So a snapshot is taken only when the previous one has been sent and at
  least `min_interval_s` after the last one; the weights actors fetch are
  then at most that much plus one insert older than the learner's. A
  snapshot taken before `close` is still sent.

  Args:
    client: the run's `reverb.Client`.
    variables: the variables to publish (read by one `tf.function` call).
    min_interval_s: least time between two snapshots (0: whenever idle).
    timeout_s: an insert that takes longer fails the publisher.
  """

  def __init__(self, client: reverb.Client, variables: Sequence[tf.Variable],
               min_interval_s: float = 0.0, timeout_s: float = 30.0) -> None:
    super().__init__(variables, name="weights-publisher",
                     what="weights publisher", finish_pending=True)
    self._client = client
    self._timeout_s = timeout_s
    self._min_interval_s = min_interval_s
    self._last_snapshot = -float("inf")

  def offer(self, version: int) -> bool:
    """Snapshots the variables for publishing unless an insert is under way
    or the last snapshot is too recent; returns whether one was taken."""
    self.raise_if_failed()
    now = time.monotonic()
    if now - self._last_snapshot < self._min_interval_s:
      return False
    if not self.hand_over(version):
      return False
    self._last_snapshot = now
    return True

  def work(self, tag: Any, tensors: List[tf.Tensor]) -> None:
    _insert_weights(self._client, tag, [t.numpy() for t in tensors],
                    self._timeout_s)


def call_with_deadline(fn: Callable[[], object], deadline: float,
                       should_stop: Callable[[], bool] = lambda: False,
                       what: str = "Reverb call") -> Tuple[bool, object]:
  """`fn()` run in a daemon thread; waits until it returns or `deadline`.

  Args:
    fn: the blocking call.
    deadline: `time.monotonic()` value after which waiting stops.
    should_stop: polled while waiting; when true, waiting stops.
    what: names the call in the error.

  Returns:
    (True, result) when `fn` finished, (False, None) when `should_stop`.

  Raises:
    ServerUnavailableError: at the deadline (the thread is left blocked;
      as a daemon it does not keep the process alive).
    Exception: whatever `fn` raised.
  """
  outcome = {}

  def run():
    try:
      outcome["value"] = fn()
    except BaseException as e:  # pylint: disable=broad-except
      outcome["error"] = e

  worker = threading.Thread(target=run, name=what, daemon=True)
  worker.start()
  while True:
    # Short slices: the main thread must return to Python for signal
    # handlers (SIGTERM) to run.
    worker.join(0.1)
    if not worker.is_alive():
      break
    if should_stop():
      return False, None
    if time.monotonic() > deadline:
      raise ServerUnavailableError(f"{what} did not complete in time (is "
                                   f"the Reverb server gone?)")
  if "error" in outcome:
    raise outcome["error"]
  return True, outcome["value"]


def fetch(client: reverb.Client, timeout_s: float = 30.0,
          should_stop: Callable[[], bool] = lambda: False
          ) -> Optional[tuple]:
  """(version, [arrays]) of the latest weights; None if stopped/timed out.

  Waits (with a bounded poll, never forever) until the learner has
  published, then samples the single item.

  Raises:
    ServerUnavailableError: if the server did not answer at all for
      `timeout_s` (every query failed or timed out).
  """
  deadline = time.monotonic() + timeout_s
  delay = 0.01
  last_error = None
  answered = False
  while not should_stop():
    try:
      info = client.server_info(timeout=1)
      answered = True
      if info[server_lib.WEIGHTS_TABLE].current_size > 0:
        done, sample = call_with_deadline(
            lambda: next(client.sample(server_lib.WEIGHTS_TABLE,
                                       num_samples=1, emit_timesteps=False,
                                       unpack_as_table_signature=True)),
            deadline, should_stop, what="weights sample")
        if not done:
          return None
        version, values = sample.data
        return int(np.asarray(version)), [np.asarray(v) for v in values]
    except (reverb.errors.ReverbError, RuntimeError) as e:
      if isinstance(e, ServerUnavailableError):
        raise
      # The server is restarting or gone: retry until the deadline.
      last_error = e
      answered = False
    if time.monotonic() > deadline:
      if answered:
        return None
      raise ServerUnavailableError(
          f"Reverb server did not answer for {timeout_s:.0f}s (last error: "
          f"{type(last_error).__name__}: "
          f"{str(last_error).splitlines()[0] if last_error else 'none'})")
    time.sleep(delay)
    delay = min(2 * delay, 0.5)
  return None


def latest_version(client: reverb.Client, timeout_s: float = 30.0,
                   should_stop: Callable[[], bool] = lambda: False
                   ) -> Optional[int]:
  """The version of the latest published weights, read without the weights;
  None if stopped.

  Meant for an actor that already fetched weights from this server (the
  table is empty until the first publish, and a sample then waits for it).

  Raises:
    ServerUnavailableError: if the sample did not return in `timeout_s`.
  """
  done, sample = call_with_deadline(
      lambda: next(client.sample(server_lib.WEIGHTS_VERSION_TABLE,
                                 num_samples=1, emit_timesteps=False)),
      time.monotonic() + timeout_s, should_stop,
      what="weights version sample")
  if not done:
    return None
  return int(np.asarray(sample.data[0]))


def assign(variables: Sequence[tf.Variable],
           values: List[np.ndarray]) -> None:
  if len(variables) != len(values):
    raise ValueError(
        f"Received {len(values)} weight arrays for {len(variables)} "
        f"variables: the actor's network does not match the learner's "
        f"(same --agent, --env and config overrides?).")
  for var, value in zip(variables, values):
    var.assign(value)
