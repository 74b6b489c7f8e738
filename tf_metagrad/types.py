"""Data contracts shared by actors, Reverb tables and learners."""

from typing import Any, NamedTuple, Optional

import tensorflow as tf


class Trajectory(NamedTuple):
  """One time-major unroll of length T collected by an actor.

  Attributes:
    observation: `[T+1, B, ...]`; `observation[t]` is x_t and `observation[T]`
      is the state the unroll bootstraps from. An episode may end inside the
      unroll: the first observation of the next episode then follows at t+1.
    action: `[T, B]` int32 for discrete actions, `[T, B, A]` float32 for
      continuous ones (already squashed into [-1, 1]).
    reward: `[T, B]` raw environment reward r_t received after a_t (any
      clipping is the learner's business).
    discount: `[T, B]` environment discount applied to step t+1: 0 where the
      episode ended at step t+1, 1 otherwise.
    behaviour_log_prob: `[T, B]` log mu(a_t | x_t) of the acting policy.
    core_state: recurrent state of the acting policy at x_0 (a nest of
      `[B, ...]` tensors), or `()` for feed-forward policies.
  """

  observation: Any
  action: tf.Tensor
  reward: tf.Tensor
  discount: tf.Tensor
  behaviour_log_prob: tf.Tensor
  core_state: Optional[Any] = ()
