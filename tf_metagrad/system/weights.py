"""Learner -> actor weight transport through the Reverb "weights" table."""

import threading
import time
from typing import List, Optional, Sequence

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad.system import server as server_lib


def publish(client: reverb.Client, variables: Sequence[tf.Variable],
            version: int) -> None:
  """Replaces the weights item by the current values of `variables`."""
  _insert(client, version, [v.numpy() for v in variables])


def _insert(client, version, arrays):
  client.insert((np.int64(version), arrays),
                priorities={server_lib.WEIGHTS_TABLE: 1.0})


class Publisher(threading.Thread):
  """Publishes weight snapshots from a background thread.

  The learner only copies its variables to host arrays (`offer`); the
  Reverb insert (serialisation and compression, a few ms for a 2x256 MLP)
  happens here, off the learner's critical path. Only the newest snapshot
  matters, so an unsent older one is replaced.
  """

  def __init__(self, client: reverb.Client):
    super().__init__(name="weights-publisher", daemon=True)
    self._client = client
    self._cond = threading.Condition()
    self._pending = None
    self._closed = False
    self.error: Optional[BaseException] = None

  def offer(self, variables: Sequence[tf.Variable], version: int) -> None:
    if self.error is not None:
      raise RuntimeError("weights publisher failed") from self.error
    snapshot = (version, [v.numpy() for v in variables])
    with self._cond:
      self._pending = snapshot
      self._cond.notify()

  def run(self):
    while True:
      with self._cond:
        while self._pending is None and not self._closed:
          self._cond.wait()
        if self._pending is None:
          return
        version, arrays = self._pending
        self._pending = None
      try:
        _insert(self._client, version, arrays)
      except BaseException as e:  # pylint: disable=broad-except
        self.error = e
        return

  def close(self, timeout_s: float = 10.0):
    with self._cond:
      self._closed = True
      self._cond.notify()
    self.join(timeout_s)


def fetch(client: reverb.Client, timeout_s: float = 30.0,
          should_stop=lambda: False) -> Optional[tuple]:
  """(version, [arrays]) of the latest weights; None if stopped/timed out.

  Waits (with a bounded poll, never forever) until the learner has
  published, then samples the single item.
  """
  deadline = time.monotonic() + timeout_s
  delay = 0.01
  while not should_stop():
    info = client.server_info(timeout=max(1, int(timeout_s)))
    if info[server_lib.WEIGHTS_TABLE].current_size > 0:
      sample = next(client.sample(server_lib.WEIGHTS_TABLE, num_samples=1,
                                  emit_timesteps=False,
                                  unpack_as_table_signature=True))
      # Items written with `insert` come back with a leading length-1 axis.
      version, values = sample.data
      return (int(np.asarray(version)[0]),
              [np.asarray(v)[0] for v in values])
    if time.monotonic() > deadline:
      return None
    time.sleep(delay)
    delay = min(2 * delay, 0.5)
  return None


def assign(variables: Sequence[tf.Variable], values: List[np.ndarray]):
  if len(variables) != len(values):
    raise ValueError(
        f"Received {len(values)} weight arrays for {len(variables)} "
        f"variables: the actor's network does not match the learner's "
        f"(same --agent, --env and config overrides?).")
  for var, value in zip(variables, values):
    var.assign(value)
