"""The Reverb server of a run: a trajectory queue and a weights table.

- "trajectories": a FIFO queue of unroll items with a signature built from
  the specs. Reverb's queue rate limiter blocks inserts when it is full and
  samples when it is empty; its capacity must exceed the learner batch + 1
  (a smaller queue can deadlock: the dataset holds a batch in flight while
  actors wait for space).
- "weights": the learner's latest network weights (one item, replaced on
  every publish), which actors sample to refresh their policy.

Nothing here is checkpointed: the queue holds transient data, so a resumed
run starts with an empty queue and a fresh rate limiter (which avoids the
blocked-inserts-after-restore problem of reverb#103).

Note on binding: dm-reverb 0.14's `Server` listens on all interfaces
([::] and 0.0.0.0) and has no option for a bind address; clients here always
connect to 127.0.0.1. Run trainers on a host whose firewall closes the port
if other machines must not reach it.
"""

from typing import Dict, Optional, Sequence

import reverb
import tensorflow as tf

TRAJECTORY_TABLE = "trajectories"
WEIGHTS_TABLE = "weights"


def queue_capacity(batch_size: int, requested: Optional[int] = None) -> int:
  """A queue size that cannot deadlock for `batch_size` (> batch + 1)."""
  minimum = batch_size + 2
  if requested is None:
    return max(4 * batch_size, minimum)
  if requested < minimum:
    raise ValueError(
        f"queue_capacity must be > batch_size + 1 = {batch_size + 1} (a "
        f"smaller Reverb queue can deadlock), got {requested}.")
  return requested


def weights_signature(variables: Sequence[tf.Variable]):
  """Signature of a weights item: (version, [variable values])."""
  return (tf.TensorSpec([], tf.int64),
          [tf.TensorSpec(v.shape, v.dtype) for v in variables])


def make_tables(item_spec: Dict[str, tf.TensorSpec],
                weights_spec, batch_size: int,
                capacity: Optional[int] = None):
  return [
      reverb.Table.queue(
          name=TRAJECTORY_TABLE,
          max_size=queue_capacity(batch_size, capacity),
          signature=item_spec),
      reverb.Table(
          name=WEIGHTS_TABLE,
          sampler=reverb.selectors.Lifo(),
          remover=reverb.selectors.Fifo(),
          max_size=1,
          rate_limiter=reverb.rate_limiters.MinSize(1),
          signature=weights_spec),
  ]


def start_server(tables, port: Optional[int] = None) -> reverb.Server:
  """Starts the embedded server (port None: pick a free one)."""
  return reverb.Server(tables=tables, port=port)


def local_address(port: int) -> str:
  return f"127.0.0.1:{port}"
