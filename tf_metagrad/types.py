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
      episode terminated at step t+1, and at padding steps; 1 otherwise
      (also where a time limit truncated it, which is not a terminal state).
    behaviour_log_prob: `[T, B]` log mu(a_t | x_t) of the acting policy.
    core_state: recurrent state of the acting policy at x_0 (a nest of
      `[B, ...]` tensors), or `()` for feed-forward policies.
    mask: `[T, B]` float, 0 at padding steps, 1 at real ones; `()` (the
      default, an empty nest like a feed-forward `core_state`, so that
      trajectories still stack and slice with `tf.nest`) or None means
      every step is real. A time limit is not a terminal state, so targets
      must bootstrap from the value of the observation it cut the episode
      at (Pardo et al. 2018, "Time limits in reinforcement learning"); the
      actors keep that observation x_final in the dm_env way: the truncated
      step t is a normal transition (discount 1) into x_{t+1} = x_final, and
      step t+1 is a padding step from x_final into the next episode's first
      observation: no environment step, a dummy action (0), reward 0,
      discount 0, behaviour log-prob 0 and mask 0. Learners give padding
      steps zero importance weight and trace (so the return there is
      V(x_final)) and leave them out of every loss term.
  """

  observation: Any
  action: tf.Tensor
  reward: tf.Tensor
  discount: tf.Tensor
  behaviour_log_prob: tf.Tensor
  core_state: Optional[Any] = ()
  mask: Optional[Any] = ()


def step_mask(trajectory: Trajectory) -> Optional[tf.Tensor]:
  """`trajectory.mask`, or None where it says that every step is real."""
  mask = trajectory.mask
  if mask is None or (isinstance(mask, tuple) and not mask):
    return None
  return mask
