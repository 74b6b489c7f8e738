"""A multi-worker learner's input: batches in hand before the collective step.

Why not read Reverb inside the step, as one process does (`dataset.py`):
under `MultiWorkerMirroredStrategy` the learner step is a collective. A
worker whose queue is empty waits in `get_next` for `data_timeout` and then
fails out of the step, while the workers that had data wait for it in the
step's gradient all-reduce; the one goes back to the loop's vote (another
all-reduce) and the others never leave theirs. Collectives have no timeout
(see `distribute/cluster.py`), so every worker hangs.

So each worker stages its batches on the host first: a thread draws them
from its own Reverb dataset (each draw bounded by the dataset's timeout)
into a FIFO queue, and the learner's distributed dataset dequeues from that
queue. Before every learner call the workers vote on whether each holds the
call's batches (`ready`); the call runs only when all do, so no worker ever
waits in `get_next` inside the step, and every wait outside it is bounded.
A worker without data keeps voting "not ready" until `max_data_wait_s`,
when the workers all stop with the same line (see `training/step_loop.py`).

The queue holds at most `capacity` batches; batches staged when the run
stops are dropped, as those in a dataset's prefetch buffer are (the
env-step counter counts only what the learner consumed).
"""

import threading
import time
from typing import Dict, Optional

import tensorflow as tf

from tf_metagrad.system import dataset as dataset_lib

_EMPTY_SOURCE = (StopIteration, tf.errors.OutOfRangeError,
                 tf.errors.DeadlineExceededError)


class StagedInput:
  """One worker's staged batches; see the module docstring.

  Args:
    strategy: the learner's (multi-worker) strategy.
    address: "host:port" of this worker's Reverb server.
    item_spec: `items.item_spec(...)`.
    global_batch_size: unrolls per step over all replicas of all workers.
    timeout_ms: the longest one draw from Reverb may wait.
    capacity: batches the queue holds at most (per worker).
  """

  def __init__(self, strategy: tf.distribute.Strategy, address: str,
               item_spec: Dict[str, tf.TensorSpec], global_batch_size: int,
               timeout_ms: int, capacity: int) -> None:
    self._strategy = strategy
    self._local_replicas = len(strategy.extended.worker_devices)
    self._source = dataset_lib.make_dataset(
        address, item_spec,
        dataset_lib.per_replica_batch_size(strategy, global_batch_size),
        timeout_ms)
    self._spec = self._source.element_spec
    flat = tf.nest.flatten(self._spec)
    self._queue = tf.queue.FIFOQueue(
        max(capacity, 1) * self._local_replicas, [s.dtype for s in flat],
        shapes=[s.shape for s in flat], name="staged_batches")
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._stage, name="input-stager",
                                    daemon=True)
    self.error: Optional[BaseException] = None

  def start(self) -> None:
    self._thread.start()

  def _stage(self):
    try:
      iterator = iter(self._source)
      while not self._stop.is_set():
        try:
          element = next(iterator)
        except _EMPTY_SOURCE:
          iterator = iter(self._source)
          continue
        self._queue.enqueue(tf.nest.flatten(element))
    except tf.errors.CancelledError:
      pass  # `close` cancelled a pending enqueue.
    except Exception as e:  # pylint: disable=broad-except
      # Kept for the loop to raise: an input that died must stop the run,
      # not leave it waiting for batches that will never come.
      self.error = e

  def dataset(self) -> tf.distribute.DistributedDataset:
    """The learner's distributed dataset: each replica's next batch from
    this worker's queue."""

    def dataset_fn(context: tf.distribute.InputContext):
      del context  # One queue per worker; its replicas take turns.
      return tf.data.Dataset.from_tensors(0).repeat().map(
          lambda _: tf.nest.pack_sequence_as(self._spec,
                                             self._queue.dequeue()))

    return self._strategy.distribute_datasets_from_function(dataset_fn)

  def staged(self) -> int:
    """Batches in the queue now."""
    return int(self._queue.size())

  def wait_ready(self, num_steps: int, timeout_s: float) -> bool:
    """True as soon as the queue holds `num_steps` learner steps' batches
    for this worker's replicas; False after `timeout_s` without them.

    Raises:
      RuntimeError: the staging thread failed.
    """
    needed = num_steps * self._local_replicas
    deadline = time.monotonic() + timeout_s
    while True:
      if self.error is not None:
        raise RuntimeError(f"the learner's input failed: {self.error!r}")
      if self.staged() >= needed:
        return True
      if time.monotonic() >= deadline:
        return False
      time.sleep(0.02)

  def close(self, timeout_s: float = 10.0) -> None:
    """Stops staging; bounded by the source's timeout plus `timeout_s`."""
    self._stop.set()
    self._queue.close(cancel_pending_enqueues=True)
    self._thread.join(timeout_s)
