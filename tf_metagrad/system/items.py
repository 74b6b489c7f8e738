"""The Reverb item of one actor unroll, and its conversion to a Trajectory.

An item holds one actor's whole unroll of all its K environment copies as a
single Reverb step, batch-major (observation `[K, T+1, ...]`, everything else
`[K, T, ...]`), so an actor appends and creates one item per unroll. K is
left open in the signature (`None`): actors with different numbers of copies
share the queue. The learner's dataset splits items into per-copy unrolls,
batches B of them to `[B, T(+1), ...]`, and `to_trajectory` makes them
time-major.

Why one item per unroll rather than per copy: each Reverb append and item
costs a fixed amount of C++ work under the GIL (chunking and compressing
every column); per copy that was about 11 us per frame on Catch, more than
the policy itself, so writing was the actors' largest cost
(`benchmarks.throughput`).

A time limit is not a terminal state (Pardo et al. 2018, "Time limits in
reinforcement learning"): where one cut an episode, the item keeps the final
observation x_final as the observation of an extra padding step, marked by
`mask` 0 (see `types.Trajectory.mask` and `system.reverb_actor`), so the learner
bootstraps from V(x_final).

Two extra columns carry episode statistics to the learner with the data, so
remote actors need no side channel: `episode_return[t]` is the raw return of
an episode that ended at step t (NaN elsewhere) and `episode_length[t]` its
length (0 elsewhere). Items of an actor writing overlapping unrolls
(`system.reverb_actor`, `unroll_stride`) carry them only on their new steps, so
that each episode is reported once.

A recurrent policy's state before observation 0 (`Trajectory.core_state`)
travels as one column per tensor of the flattened state, `core_state_0`,
`core_state_1`, ... (`[K, ...]` per item); feed-forward items have none and
give the state `()`.
"""

from typing import Any, Dict, Optional, Tuple

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import types

EPISODE_COLUMNS = ("episode_return", "episode_length")
_CORE_PREFIX = "core_state_"


def _core_key(i: int) -> str:
  return f"{_CORE_PREFIX}{i}"


def action_spec(action_space: gymnasium.spaces.Space) -> tf.TensorSpec:
  """Per-step action spec: int32 scalar or float32 `[A]`."""
  if isinstance(action_space, gymnasium.spaces.Discrete):
    return tf.TensorSpec([], tf.int32)
  if isinstance(action_space, gymnasium.spaces.Box):
    return tf.TensorSpec(action_space.shape, tf.float32)
  raise TypeError(
      "action_space must be gymnasium.spaces.Discrete or Box, got "
      f"{type(action_space).__name__}.")


def resolve_stride(unroll_stride: Optional[int], unroll_length: int) -> int:
  """The steps between an actor's consecutive items: `unroll_stride`, or
  `unroll_length` (no overlap) for None; it must be in [1, unroll_length]
  (see `system.reverb_actor`)."""
  stride = unroll_length if unroll_stride is None else unroll_stride
  if not 1 <= stride <= unroll_length:
    raise ValueError(f"unroll_stride must be in [1, unroll_length="
                     f"{unroll_length}], got {unroll_stride}.")
  return stride


def item_spec(observation_spec: tf.TensorSpec,
              action_space: gymnasium.spaces.Space,
              unroll_length: int,
              core_state_spec: Any = ()) -> Dict[str, tf.TensorSpec]:
  """Signature of one unroll item (leading dimension: the K copies, open).

  Args:
    observation_spec: spec of one observation.
    action_space: the environment's action space.
    unroll_length: T.
    core_state_spec: per-example specs of the acting policy's recurrent
      state (`Policy.state_spec()`), `()` for feed-forward policies.
  """
  if unroll_length < 1:
    raise ValueError(f"unroll_length must be >= 1, got {unroll_length}.")
  t = unroll_length
  act = action_spec(action_space)
  spec = {
      "observation": tf.TensorSpec(
          [None, t + 1] + observation_spec.shape.as_list(),
          observation_spec.dtype),
      "action": tf.TensorSpec([None, t] + act.shape.as_list(), act.dtype),
      "reward": tf.TensorSpec([None, t], tf.float32),
      "discount": tf.TensorSpec([None, t], tf.float32),
      "behaviour_log_prob": tf.TensorSpec([None, t], tf.float32),
      "mask": tf.TensorSpec([None, t], tf.float32),
      "episode_return": tf.TensorSpec([None, t], tf.float32),
      "episode_length": tf.TensorSpec([None, t], tf.int32),
  }
  for i, state in enumerate(tf.nest.flatten(core_state_spec)):
    if not isinstance(state, tf.TensorSpec):
      raise TypeError(f"core_state_spec must be a nest of tf.TensorSpec, got "
                      f"{type(state).__name__}.")
    spec[_core_key(i)] = tf.TensorSpec([None] + state.shape.as_list(),
                                       state.dtype)
  return spec


def to_trajectory(batch: Dict[str, tf.Tensor]
                  ) -> Tuple[types.Trajectory, Dict[str, tf.Tensor]]:
  """Batch-major items `[B, T(+1), ...]` -> (time-major Trajectory, stats)."""

  def time_major(x):
    perm = [1, 0] + list(range(2, x.shape.rank))
    return tf.transpose(x, perm)

  trajectory = types.Trajectory(
      observation=time_major(batch["observation"]),
      action=time_major(batch["action"]),
      reward=time_major(batch["reward"]),
      discount=time_major(batch["discount"]),
      behaviour_log_prob=time_major(batch["behaviour_log_prob"]),
      core_state=tuple(batch[_core_key(i)] for i in range(
          sum(k.startswith(_CORE_PREFIX) for k in batch))),
      mask=time_major(batch["mask"]))
  stats = {k: time_major(batch[k]) for k in EPISODE_COLUMNS}
  return trajectory, stats


def numpy_item(observations: np.ndarray, actions: np.ndarray,
               rewards: np.ndarray, discounts: np.ndarray,
               log_probs: np.ndarray, episode_returns: np.ndarray,
               episode_lengths: np.ndarray, masks: np.ndarray,
               core_state: Tuple[np.ndarray, ...] = ()
               ) -> Dict[str, np.ndarray]:
  """The item of time-major actor buffers `[T(+1), K, ...]` (numpy, made
  batch-major); `masks` is 0 at padding steps; `core_state` is the batched
  state `[K, ...]` before observation 0."""

  def batch_major(x):
    return np.ascontiguousarray(np.swapaxes(x, 0, 1))

  item = {
      "observation": batch_major(observations),
      "action": batch_major(actions),
      "reward": batch_major(rewards),
      "discount": batch_major(discounts),
      "behaviour_log_prob": batch_major(log_probs),
      "mask": batch_major(masks),
      "episode_return": batch_major(episode_returns),
      "episode_length": batch_major(episode_lengths),
  }
  for i, state in enumerate(tf.nest.flatten(core_state)):
    item[_core_key(i)] = np.asarray(state)
  return item
