"""Cross-replica helpers that keep meta-gradient maths strategy-agnostic.

Every function here is a no-op under the default strategy (one replica), so
the same learner code runs on one device, on a MirroredStrategy and on a
TPUStrategy.
"""

from typing import Any, Sequence

import tensorflow as tf


def num_replicas() -> int:
  """Number of replicas of the current strategy (1 outside `strategy.run`)."""
  return tf.distribute.get_strategy().num_replicas_in_sync


def cross_replica_reduce(tensors: Any, reduction: str = "sum") -> Any:
  """All-reduces a nest of tensors over replicas ("sum" or "mean").

  The reduction is differentiable: TensorFlow registers the gradient of an
  all-sum (all-mean) as an all-sum (all-mean) of the upstream gradients, which
  is what makes the meta-gradient through an all-reduced inner update exact
  (see `engine.MetaGradientEngine`).

  Args:
    tensors: a nest of tensors, identical structure and shapes on every
      replica.
    reduction: "sum" when the per-replica losses are sums over the local
      batch (the gradient of the global-batch sum), "mean" when they are
      means over equal shards.

  Returns:
    The reduced nest (the input itself with one replica).
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")
  if tf.distribute.in_cross_replica_context():
    raise RuntimeError(
        "cross_replica_reduce must be called inside strategy.run (replica "
        "context), not in the cross-replica context.")
  if num_replicas() == 1:
    return tensors
  op = (tf.distribute.ReduceOp.SUM if reduction == "sum"
        else tf.distribute.ReduceOp.MEAN)
  return tf.distribute.get_replica_context().all_reduce(op, tensors)


def assign_from_replicas(variables: Sequence[tf.Variable],
                         values: Sequence[tf.Tensor]) -> None:
  """Assigns `values` (identical on every replica) to mirrored `variables`.

  In a replica context a plain `assign` on a mirrored variable needs an
  aggregation mode; the values here are already synchronised (they come from
  all-reduced gradients), so each device's copy takes its own replica's value
  through `merge_call` + `extended.update`.

  Args:
    variables: variables created under the strategy's scope.
    values: tensors aligned with `variables`.
  """
  variables = list(variables)
  values = list(values)
  if len(variables) != len(values):
    raise ValueError(
        f"assign_from_replicas got {len(variables)} variables but "
        f"{len(values)} values.")
  if not variables:
    return
  if (not tf.distribute.has_strategy()
      or tf.distribute.in_cross_replica_context()):
    for var, value in zip(variables, values):
      var.assign(value)
    return

  def _merge(strategy, pairs):
    for var, value in pairs:
      strategy.extended.update(
          var, lambda v, x: v.assign(x), args=(value,), group=False)

  tf.distribute.get_replica_context().merge_call(
      _merge, args=(list(zip(variables, values)),))
