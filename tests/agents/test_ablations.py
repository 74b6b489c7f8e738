"""Ablations freeze what they say (STAC section 4.1: a hyperparameter that is
not self-tuned is fixed to its outer-loss value), also after the
metaparameters have moved: MGRL subsets, STAC with separate leaky alphas
(STAC fig. 5b) on a subset, DrMG's scalar eta and n-step return (Yin et al. (2023)
section 5.3)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad.agents import losses
from tests.agents import helpers

# Outer values away from the defaults, so a frozen value that slipped to a
# default (or to the meta-learned value) changes the loss.
TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float64",
            learning_rate=0.01, meta_learning_rate=0.1, reward_clip=None,
            gamma=0.97, lambda_=0.8, alpha=0.7, g_v=0.3, g_p=0.9, g_e=0.02)
STEPS = 3


def _batch(seed):
  return helpers.random_trajectory(np.random.default_rng(seed), 4, 3)


def _make(agent, **overrides):
  spec, space = helpers.spaces()
  return agents.make_learner(agent, spec, space, **dict(TINY, **overrides))


def _trained(agent, **overrides):
  learner = _make(agent, **overrides)
  before = {k: v.numpy() for k, v in learner.meta_params().items()}
  for step in range(STEPS):
    learner.step(_batch(step))
  for name, value in learner.meta_params().items():
    assert not np.allclose(before[name], value), f"{name} did not move"
  return learner


def _params(learner):
  return [tf.convert_to_tensor(v) for v in learner.network.trainable_variables]


def _outer_values(config):
  return dict(gamma=config.gamma, lambda_=config.lambda_,
              alpha_rho=config.alpha, alpha_c=config.alpha, g_v=config.g_v,
              g_p=config.g_p, g_e=config.g_e)


def _expected_values(learner):
  """The outer values, with the meta-learned ones replaced by their current
  inner values (sigmoid, times the outer value for loss weights)."""
  values = _outer_values(learner.config)
  for name, value in learner.meta_values().items():
    if name == "alpha":
      values.update(alpha_rho=value, alpha_c=value)
    else:
      values[name] = value
  return values


def _loss_with(learner, batch, values):
  """Algorithm 1's inner loss at the learner's parameters with explicit
  hyperparameters (the loss function called directly, no learner code)."""
  net, cfg = learner.network, learner.config
  outputs = net(batch.observation)
  policy = net.policy(outputs, 0, time_slice=slice(0, -1))
  return losses.actor_critic_loss(
      policy=policy, values=net.values(outputs), reference_policy=policy,
      reference_values=net.values(outputs), actions=batch.action,
      rewards=batch.reward, discounts=batch.discount,
      behaviour_log_prob=batch.behaviour_log_prob,
      hparams=losses.LossHyperparams(**values), inner=True,
      quantile_taus=learner._taus, kappa=cfg.kappa,
      distributional_advantage=getattr(cfg, "distributional_advantage",
                                       "vtrace"),
      n_step=cfg.n_step).loss.numpy()


def _inner_loss(learner, batch, params=None):
  params = _params(learner) if params is None else params
  loss, _ = learner._inner_loss(params, learner._meta_variables(), batch,
                                None)
  return loss.numpy()


def _check_frozen(learner, frozen):
  """Frozen hyperparameters: not metaparameters, exactly the outer value in
  the inner hyperparameters, and the inner loss is the loss at the outer
  values (with the learned ones at their inner values)."""
  cfg = learner.config
  assert not set(frozen) & set(learner.meta_params())
  hparams = learner._hparams(learner._transform(learner._meta_variables(),
                                                0))._asdict()
  outer = _outer_values(cfg)
  for name in frozen:
    for field in (("alpha_rho", "alpha_c") if name == "alpha" else (name,)):
      assert hparams[field] == outer[field], (field, hparams[field])
  batch = _batch(10)
  expected = _expected_values(learner)
  np.testing.assert_allclose(_inner_loss(learner, batch),
                             _loss_with(learner, batch, expected),
                             rtol=1e-12)
  return batch, expected


@pytest.mark.parametrize("learned,frozen", [
    (("gamma",), ("lambda_",)),
    (("lambda_",), ("gamma",)),
])
def test_mgrl_subset_freezes_the_rest(learned, frozen):
  # Without the gamma embedding, so that the network (and an IMPALA one
  # with the same weights) sees no gamma and only the loss tells them apart.
  learner = _trained("mgrl", meta_learned=learned, gamma_embedding=False)
  assert set(learner.meta_params()) == set(learned)
  batch, expected = _check_frozen(learner, frozen + ("alpha", "g_v", "g_p",
                                                     "g_e"))
  # An IMPALA learner whose fixed values are MGRL's inner ones gives the
  # same inner loss at the same parameters.
  impala = _make("impala", gamma=float(expected["gamma"]),
                 lambda_=float(expected["lambda_"]))
  np.testing.assert_allclose(_inner_loss(learner, batch),
                             _inner_loss(impala, batch, _params(learner)),
                             rtol=1e-12)
  # The check is sensitive to the frozen value.
  moved = dict(expected, **{frozen[0]: 0.5})
  assert abs(_loss_with(learner, batch, moved)
             - _inner_loss(learner, batch)) > 1e-6


def test_stac_separate_alphas_subset_freezes_the_rest():
  learner = _trained("stac", meta_learned=("alpha", "g_p"),
                     separate_alphas=True)
  assert set(learner.meta_params()) == {"alpha_rho", "alpha_c", "g_p"}
  values = learner.meta_values()
  assert not np.isclose(values["alpha_rho"], values["alpha_c"])
  batch, expected = _check_frozen(learner, ("gamma", "lambda_", "g_v", "g_e"))
  for name in ("lambda_", "g_v"):
    moved = dict(expected, **{name: 0.5})
    assert abs(_loss_with(learner, batch, moved)
               - _inner_loss(learner, batch)) > 1e-6, name


# DrMG with one update per step here (outer_batch="same"): the ablations do
# not depend on the batch scheme, and the default's swapped halves, which
# trace the update twice, are tested in test_metagradient_fd.py.
DRMG_ONE_UPDATE = dict(num_quantiles=4, outer_batch="same")


def test_drmg_scalar_eta_is_one_value_for_every_quantile():
  learner = _trained("drmg", scalar_eta=True, **DRMG_ONE_UPDATE)
  assert {k: v.shape for k, v in learner.meta_params().items()} == {
      k: () for k in ("gamma", "lambda_", "alpha", "g_v", "g_p", "g_e")}
  batch, expected = _check_frozen(learner, ())
  # The quantile-regression variant (no meta-learning) with those scalars as
  # its fixed values is the same inner loss.
  qr = _make("drmg", num_quantiles=4, variant="qr",
             gamma=float(expected["gamma"]),
             lambda_=float(expected["lambda_"]),
             alpha=float(expected["alpha_rho"]), g_v=float(expected["g_v"]),
             g_p=float(expected["g_p"]), g_e=float(expected["g_e"]))
  np.testing.assert_allclose(_inner_loss(learner, batch),
                             _inner_loss(qr, batch, _params(learner)),
                             rtol=1e-12)


def test_drmg_n_step_does_not_meta_learn_lambda_or_alpha():
  learner = _trained("drmg", n_step=3, **DRMG_ONE_UPDATE)
  assert set(learner.meta_params()) == {"gamma", "g_v", "g_p", "g_e"}
  assert learner.meta_params()["gamma"].shape == (4,)
  batch, expected = _check_frozen(learner, ("lambda_", "alpha"))
  # The n-step return has no trace and no importance correction of the
  # target, so lambda and alpha do not enter it at all.
  moved = dict(expected, lambda_=0.3, alpha_rho=0.2, alpha_c=0.2)
  np.testing.assert_allclose(_loss_with(learner, batch, moved),
                             _inner_loss(learner, batch), rtol=1e-12)
  moved = dict(expected, gamma=0.5)
  assert abs(_loss_with(learner, batch, moved)
             - _inner_loss(learner, batch)) > 1e-6
