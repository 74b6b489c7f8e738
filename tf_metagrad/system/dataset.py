"""Learner input: Reverb queue -> batched, time-major, per-replica batches."""

from typing import Dict

import reverb
import tensorflow as tf

from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib


def make_dataset(address: str, item_spec: Dict[str, tf.TensorSpec],
                 batch_size: int, timeout_ms: int) -> tf.data.Dataset:
  """Batches of `batch_size` unrolls as (Trajectory, episode stats).

  Items (one actor unroll of K copies each) are split into per-copy unrolls
  and re-batched, so a batch may join copies of several actors and an item
  may span two batches; every copy is consumed exactly once.

  Args:
    address: "host:port" of the Reverb server.
    item_spec: `items.item_spec(...)`.
    batch_size: unrolls per batch (per replica when distributed).
    timeout_ms: a sample that waits longer than this for data ends the
      dataset instead of blocking forever; the learner then re-checks its
      actors and builds a new iterator.
  """
  dataset = reverb.TrajectoryDataset(
      server_address=address,
      table=server_lib.TRAJECTORY_TABLE,
      dtypes=tf.nest.map_structure(lambda s: s.dtype, item_spec),
      shapes=tf.nest.map_structure(lambda s: s.shape, item_spec),
      # Sampled items leave the queue; two in flight keep one ready while
      # the other is decoded, without draining the queue into the pipeline.
      max_in_flight_samples_per_worker=2,
      # A FIFO queue needs exactly one worker per iterator.
      num_workers_per_iterator=1,
      rate_limiter_timeout_ms=timeout_ms)
  dataset = dataset.map(lambda sample: sample.data)
  dataset = dataset.unbatch()
  dataset = dataset.batch(batch_size, drop_remainder=True)
  dataset = dataset.map(items.to_trajectory)
  return dataset.prefetch(1)


def per_replica_batch_size(strategy: tf.distribute.Strategy,
                           global_batch_size: int) -> int:
  """global_batch_size / the strategy's replicas.

  Raises:
    ValueError: the replicas do not divide `global_batch_size`.
  """
  replicas = strategy.num_replicas_in_sync
  if global_batch_size % replicas:
    raise ValueError(
        f"batch_size {global_batch_size} is not divisible by the "
        f"{replicas} replicas of the strategy.")
  return global_batch_size // replicas


def distributed_dataset(strategy: tf.distribute.Strategy, address: str,
                        item_spec: Dict[str, tf.TensorSpec],
                        global_batch_size: int, timeout_ms: int
                        ) -> tf.distribute.DistributedDataset:
  """Per-replica datasets of global_batch_size / num_replicas unrolls each."""
  per_replica_batch_size(strategy, global_batch_size)  # Checks it first.

  def dataset_fn(context: tf.distribute.InputContext):
    return make_dataset(address, item_spec,
                        context.get_per_replica_batch_size(global_batch_size),
                        timeout_ms)

  return strategy.distribute_datasets_from_function(dataset_fn)
