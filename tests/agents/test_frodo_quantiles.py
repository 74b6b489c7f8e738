"""FRODO's distributional inner loss against a numpy reference, including a
single quantile (N = 1) with T == B, where a squeezed meta-network output
used to broadcast [T, B] against [T, B, 1]."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(6,), head_hidden_sizes=(6,),
            learning_rate=0.05, max_grad_norm=None, meta_units=4,
            distributional=True, reward_clip=None, g_v=0.3, g_p=0.8,
            g_e=0.05, kappa=1.0)


def _numpy_inner_loss(logits, values, target, actions, behaviour, cfg):
  """Qiu (2021) section 3.3's inner loss with a quantile critic: quantile
  Huber value loss (Yin et al. (2023) eq. 1-3) and the quantile-mean advantage."""
  n = values.shape[-1]
  taus = (2 * np.arange(n) + 1) / (2.0 * n)
  u = target[..., None, :] - values[:-1][..., :, None]  # [T, B, i, j]
  huber = np.where(np.abs(u) <= cfg.kappa, 0.5 * u ** 2,
                   cfg.kappa * (np.abs(u) - 0.5 * cfg.kappa))
  weight = np.abs(taus[:, None] - (u < 0))
  value_loss = cfg.g_v * np.sum(np.mean(weight * huber, axis=-1))
  z = logits[:-1] - logits[:-1].max(-1, keepdims=True)
  log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
  log_pi = np.take_along_axis(log_probs, actions[..., None], -1)[..., 0]
  is_weight = np.minimum(1.0, np.exp(log_pi - behaviour))
  advantage = np.mean(target - values[:-1], axis=-1)
  policy_loss = -cfg.g_p * np.sum(is_weight * log_pi * advantage)
  entropy = -np.sum(np.exp(log_probs) * log_probs, axis=-1)
  return value_loss + policy_loss - cfg.g_e * np.sum(entropy)


@pytest.mark.parametrize("num_quantiles", [1, 3])
def test_inner_loss_matches_numpy(num_quantiles):
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=1,
                                num_quantiles=num_quantiles, **TINY)
  # T == B, so a [T, B] - [T, B, 1] broadcast would not raise.
  batch = helpers.random_trajectory(np.random.default_rng(0), 4, 4)
  params = [tf.convert_to_tensor(v)
            for v in learner.network.trainable_variables]
  meta = learner.meta_params()
  loss, logs = learner._inner_loss(params, meta, batch, None)
  outputs = learner.network(batch.observation)
  logits = outputs[0][0].numpy()
  values = outputs[-1][0].numpy()
  assert values.shape == (5, 4, num_quantiles)
  target = learner.targets(meta, batch,
                           tf.reduce_mean(values[1:], axis=-1)).numpy()
  expected = _numpy_inner_loss(
      logits, values, target.reshape(4, 4, num_quantiles),
      batch.action.numpy(), batch.behaviour_log_prob.numpy(), learner.config)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-10)
  np.testing.assert_allclose(float(logs["mean_target"]), target.mean(),
                             rtol=1e-12)
  assert target.shape == (4, 4, num_quantiles)


def test_single_quantile_metagradient_matches_finite_differences(fd_seed):
  rng = np.random.default_rng(fd.shaken(5, fd_seed))
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=1,
                                num_quantiles=1, **TINY)
  inner = helpers.random_trajectory(rng, 3, 3)
  outer = helpers.random_trajectory(rng, 3, 3)
  helpers.fd_check(learner, inner, outer, rng, entries=2, directions=2)
