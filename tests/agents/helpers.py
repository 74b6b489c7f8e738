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


def _outer_loss_at(learner, inner, outer, meta):
  return float(learner.outer_loss_after_inner_update(inner, outer,
                                                     meta_params=meta))


def fd_check_every_entry(learner, inner, outer, eps=1e-5, rtol=1e-5,
                         atol=0.0):
  """Checks d L_out / d eta entry by entry against float64 central finite
  differences of `outer_loss_after_inner_update`; returns the entry count.

  An entry passes if |analytic - numeric| <= rtol * max(|analytic|,
  |numeric|, 1e-8) + atol.
  """
  grads = learner.metagradient(inner, outer)
  base = learner.meta_params()
  assert set(grads) == set(base)
  checked = 0
  for name, logits in base.items():
    flat = logits.numpy().reshape(-1)
    for i in range(flat.size):
      def loss_at(delta):
        moved = flat.copy()
        moved[i] += delta
        return _outer_loss_at(learner, inner, outer, dict(
            base, **{name: tf.constant(moved.reshape(logits.shape))}))
      numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
      analytic = grads[name].numpy().reshape(-1)[i]
      scale = max(abs(numeric), abs(analytic), 1e-8)
      assert abs(numeric - analytic) <= rtol * scale + atol, (
          f"{name}[{i}]: analytic {analytic:.10g} vs numeric {numeric:.10g}")
      checked += 1
  return checked


def fd_check_direction(learner, inner, outer, rng, eps=1e-6, rtol=1e-5):
  """Checks the meta-gradient along one random direction through every
  metaparameter at once (for meta-networks with many weights); returns
  (analytic, numeric) directional derivatives."""
  grads = learner.metagradient(inner, outer)
  base = learner.meta_params()
  assert set(grads) == set(base)
  direction = {k: tf.constant(rng.normal(size=v.shape), v.dtype)
               for k, v in base.items()}
  numeric = (
      _outer_loss_at(learner, inner, outer,
                     {k: base[k] + eps * direction[k] for k in base})
      - _outer_loss_at(learner, inner, outer,
                       {k: base[k] - eps * direction[k] for k in base})
  ) / (2 * eps)
  analytic = sum(float(tf.reduce_sum(grads[k] * direction[k])) for k in base)
  np.testing.assert_allclose(analytic, numeric, rtol=rtol)
  return analytic, numeric
