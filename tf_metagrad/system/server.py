"""The Reverb server of a run: a trajectory queue, the weights, their
version and the run's description.

- "trajectories": a FIFO queue of unroll items (one actor unroll of all its
  environment copies each, see `items`) with a signature built from the
  specs. Reverb's queue rate limiter blocks inserts when it is full and
  samples when it is empty, which bounds the policy lag of the data.
- "weights": the learner's latest network weights (one item, replaced on
  every publish), which actors sample to refresh their policy.
- "weights_version": the version of that item alone (one int64 item, written
  with it, see `weights.publish`): an actor reads it first and samples the
  weights (megabytes for the Atari ResNet) only when they changed.
- "run_info": what an actor must know to feed this run (one item, a JSON
  text, see `run_info`), which a remote actor reads instead of being told
  the run's settings by hand, and re-reads to recognise a restarted learner.

Nothing here is checkpointed: the queue holds transient data, so a resumed
run starts with an empty queue and a fresh rate limiter (which avoids the
blocked-inserts-after-restore problem of reverb#103).

Note on binding: dm-reverb 0.14's `Server` listens on all interfaces
([::] and 0.0.0.0) and has no option for a bind address; clients here always
connect to 127.0.0.1. Run trainers on a host whose firewall closes the port
if other machines must not reach it.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import reverb
import tensorflow as tf

TRAJECTORY_TABLE = "trajectories"
WEIGHTS_TABLE = "weights"
WEIGHTS_VERSION_TABLE = "weights_version"
RUN_INFO_TABLE = "run_info"


def queue_capacity(batch_size: int, envs_per_item: int,
                   requested: Optional[int] = None) -> int:
  """Queue size in items: by default room for about four learner batches.

  Args:
    batch_size: B, unrolls per learner batch.
    envs_per_item: K, environment copies per actor unroll (item).
    requested: an explicit size (>= 1); the dataset splits items and takes
      them one at a time, so even one item cannot deadlock.
  """
  if requested is None:
    return max(2, -(-4 * batch_size // max(1, envs_per_item)))
  if requested < 1:
    raise ValueError(f"queue_capacity must be >= 1 item, got {requested}.")
  return requested


def weights_signature(
    variables: Sequence[tf.Variable]
) -> Tuple[tf.TensorSpec, List[tf.TensorSpec]]:
  """Signature of a weights item: (version, [variable values])."""
  return (tf.TensorSpec([], tf.int64),
          [tf.TensorSpec(v.shape, v.dtype) for v in variables])


def make_tables(item_spec: Dict[str, tf.TensorSpec],
                weights_spec: Tuple[tf.TensorSpec, List[tf.TensorSpec]],
                capacity: int) -> List[reverb.Table]:
  """The run's four tables; `capacity` in items (see `queue_capacity`)."""
  return [
      reverb.Table.queue(
          name=TRAJECTORY_TABLE,
          max_size=capacity,
          signature=item_spec),
      reverb.Table(
          name=WEIGHTS_TABLE,
          sampler=reverb.selectors.Lifo(),
          remover=reverb.selectors.Fifo(),
          max_size=1,
          rate_limiter=reverb.rate_limiters.MinSize(1),
          signature=weights_spec),
      reverb.Table(
          name=WEIGHTS_VERSION_TABLE,
          sampler=reverb.selectors.Lifo(),
          remover=reverb.selectors.Fifo(),
          max_size=1,
          rate_limiter=reverb.rate_limiters.MinSize(1),
          signature=weights_spec[0]),
      reverb.Table(
          name=RUN_INFO_TABLE,
          sampler=reverb.selectors.Lifo(),
          remover=reverb.selectors.Fifo(),
          max_size=1,
          rate_limiter=reverb.rate_limiters.MinSize(1),
          signature=tf.TensorSpec([], tf.string)),
  ]


def append_item(writer: reverb.TrajectoryWriter, table: str,
                data: Any) -> None:
  """Appends `data` as one step and creates an item of `table` that holds
  exactly that step (every column squeezed), as every table here stores.

  Flushing is left to the caller, which knows how long it may block.
  """
  writer.append(data)
  writer.create_item(table, priority=1.0, trajectory=tf.nest.map_structure(
      lambda column: column[-1], writer.history))


def start_server(tables: Sequence[reverb.Table],
                 port: Optional[int] = None) -> reverb.Server:
  """Starts the embedded server (port None: pick a free one)."""
  return reverb.Server(tables=tables, port=port)


def local_address(port: int) -> str:
  return f"127.0.0.1:{port}"
