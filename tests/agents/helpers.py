"""Synthetic trajectories for learner tests (off-policy, with terminals)."""

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import types
from tests import finite_differences as fd


def random_trajectory(rng: np.random.Generator, unroll: int, batch: int,
                      obs_shape=(5,), num_actions=3, action_dim=None,
                      dtype=np.float64, padding=False) -> types.Trajectory:
  """A random `Trajectory` with an episode end inside the unroll.

  With `padding`, copy B-1 is also cut by a time limit: step unroll // 2 - 1
  is the truncated step (discount 1) and step unroll // 2 the padding step
  (mask 0, discount 0, reward 0, action 0, behaviour log-prob 0), the
  actors' layout (`tf_metagrad.system.reverb_actor`).
  """
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
  rewards = rng.normal(scale=0.5, size=(unroll, batch))
  masks = np.ones((unroll, batch))
  if padding:
    pad = (unroll // 2, batch - 1)
    masks[pad] = discounts[pad] = rewards[pad] = behaviour[pad] = 0.0
    actions[pad] = 0
  return types.Trajectory(
      observation=tf.constant(obs),
      action=tf.constant(actions if action_dim is None
                         else actions.astype(dtype)),
      reward=tf.constant(rewards.astype(dtype)),
      discount=tf.constant(discounts.astype(dtype)),
      behaviour_log_prob=tf.constant(behaviour.astype(dtype)),
      mask=tf.constant(masks.astype(dtype)) if padding else ())


def spaces(num_actions=3, action_dim=None, obs_shape=(5,),
           dtype=tf.float64):
  spec = tf.TensorSpec(obs_shape, dtype)
  if action_dim is None:
    return spec, gymnasium.spaces.Discrete(num_actions)
  return spec, gymnasium.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)


def fd_check(learner, inner, outer, rng, entries=None, directions=0,
             step=1e-6):
  """d L_out / d eta of `learner.metagradient` against float64 central
  differences of `outer_loss_after_inner_update`, with the error-model
  tolerance of tests/finite_differences.py.

  Args:
    learner: a float64 learner with metaparameters.
    inner: the inner batch (a list of M trajectories when M > 1).
    outer: the outer batch.
    rng: randomness of the check (noise line, sampled entries, directions).
    entries: None for every entry of every metaparameter tensor, k for k
      random entries of each, or name -> flat indices.
    directions: random unit directions through every entry, checked too.
    step: the difference step.

  Returns:
    The `finite_differences.Report`; `len(report.labels)` counts the checks.
  """
  grads = learner.metagradient(inner, outer)
  base = learner.meta_params()
  assert set(grads) == set(base)
  # Traced once: the check evaluates the loss 4 times per entry. Without
  # autograph, whose conversion of every library function the loss calls
  # took most of a FRODO check's time (the library's own functions are
  # traced without it, see agents/base.py).
  loss_at = tf.function(lambda meta: learner.outer_loss_after_inner_update(
      inner, outer, meta_params=meta), autograph=False)

  def loss(point):
    return float(loss_at({k: tf.constant(v) for k, v in point.items()}))

  return fd.check_gradient(
      loss, {k: v.numpy() for k, v in base.items()},
      {k: v.numpy() for k, v in grads.items()}, step=step, entries=entries,
      directions=directions, rng=rng, label=type(learner).__name__)
