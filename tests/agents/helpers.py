"""Synthetic trajectories for learner tests (off-policy, with terminals)."""

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import types


def random_trajectory(rng: np.random.Generator, unroll: int, batch: int,
                      obs_shape=(5,), num_actions=3, action_dim=None,
                      dtype=np.float64) -> types.Trajectory:
  """A random `Trajectory` with an episode end inside the unroll."""
  obs = rng.normal(size=(unroll + 1, batch) + tuple(obs_shape)).astype(dtype)
  if action_dim is None:
    actions = rng.integers(0, num_actions, size=(unroll, batch)).astype(
        np.int32)
    behaviour = np.log(rng.uniform(0.2, 0.6, size=(unroll, batch)))
  else:
    actions = np.tanh(rng.normal(size=(unroll, batch, action_dim)))
    behaviour = rng.normal(loc=-1.0, size=(unroll, batch))
  discounts = np.ones((unroll, batch))
  discounts[unroll // 2, 0] = 0.0
  return types.Trajectory(
      observation=tf.constant(obs),
      action=tf.constant(actions if action_dim is None
                         else actions.astype(dtype)),
      reward=tf.constant(rng.normal(scale=0.5, size=(unroll, batch)).astype(
          dtype)),
      discount=tf.constant(discounts.astype(dtype)),
      behaviour_log_prob=tf.constant(behaviour.astype(dtype)))


def spaces(num_actions=3, action_dim=None, obs_shape=(5,),
           dtype=tf.float64):
  spec = tf.TensorSpec(obs_shape, dtype)
  if action_dim is None:
    return spec, gymnasium.spaces.Discrete(num_actions)
  return spec, gymnasium.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
