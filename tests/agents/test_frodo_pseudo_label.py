"""FRODO's pseudo-label extension (Qiu (2021) section 5): the paper's weight
b1 / |L_outer| ("outer"), the value-loss form ("value"), and their
meta-gradients against finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad.agents import actor_critic
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(6,), head_hidden_sizes=(6,),
            learning_rate=0.05, max_grad_norm=None, meta_units=4,
            pseudo_label_weight=0.5)


def _make(**overrides):
  spec, space = helpers.spaces()
  return agents.make_learner("frodo", spec, space, **dict(TINY, **overrides))


def _batches(rng, num_inner_steps):
  inner = [helpers.random_trajectory(rng, 4, 3)
           for _ in range(num_inner_steps)]
  outer = helpers.random_trajectory(rng, 4, 3)
  return inner if num_inner_steps > 1 else inner[0], outer


@pytest.mark.parametrize("value,expected", [
    (True, "value"), (False, "none"), ("outer", "outer"), ("none", "none")])
def test_normalize_option_and_its_boolean_spellings(value, expected):
  config = agents.make_config("frodo", pseudo_label_normalize=value)
  assert config.pseudo_label_normalize == expected


@pytest.mark.parametrize("normalize", ["outer", "value", "none"])
def test_pseudo_label_weight_is_b1_over_the_normaliser(normalize):
  learner = _make(num_inner_steps=2, pseudo_label_normalize=normalize,
                  g_kl=0.3)
  inner, outer = _batches(np.random.default_rng(0), 2)
  params = [tf.convert_to_tensor(v)
            for v in learner.network.trainable_variables]
  loss, logs = learner._outer_loss(params, params, outer, inner, None)
  canonical, canonical_logs = actor_critic.ActorCriticLearner._outer_loss(
      learner, params, params, outer, None, None)
  weight = float(logs["pseudo_label_weight"])
  scale = {"outer": abs(float(canonical)),
           "value": float(canonical_logs["value_loss"]), "none": 1.0}
  np.testing.assert_allclose(weight * scale[normalize], 0.5, rtol=1e-12)
  np.testing.assert_allclose(
      float(loss), float(canonical) + weight * float(logs["pseudo_label_loss"]),
      rtol=1e-12)


@pytest.mark.parametrize("num_inner_steps,overrides", [
    (1, {}),
    (2, {"g_kl": 0.3}),
])
def test_outer_normalised_metagradient_matches_finite_differences(
    num_inner_steps, overrides, fd_seed):
  rng = np.random.default_rng(fd.shaken(num_inner_steps, fd_seed))
  learner = _make(num_inner_steps=num_inner_steps,
                  pseudo_label_normalize="outer", **overrides)
  inner, outer = _batches(rng, num_inner_steps)
  helpers.fd_check(learner, inner, outer, rng, entries=2, directions=2)
  # The normaliser matters: the value form gives another meta-gradient.
  value_form = _make(num_inner_steps=num_inner_steps,
                     pseudo_label_normalize="value", **overrides)
  for a, b in zip(learner.meta_network.variables,
                  value_form.meta_network.variables):
    b.assign(a)
  for a, b in zip(learner.network.variables, value_form.network.variables):
    b.assign(a)
  grads = learner.metagradient(inner, outer)
  other = value_form.metagradient(inner, outer)
  assert any(not np.allclose(grads[k], other[k]) for k in grads)


def test_step_with_outer_normaliser_updates_the_meta_network():
  learner = _make(num_inner_steps=2, pseudo_label_normalize="outer",
                  dtype="float32")
  batch = helpers.random_trajectory(np.random.default_rng(3), 12, 2,
                                    dtype=np.float32)
  before = {k: v.numpy() for k, v in learner.meta_params().items()}
  metrics = learner.step(batch)
  assert np.isfinite(float(metrics["outer_loss"]))
  assert float(metrics["outer/pseudo_label_weight"]) > 0
  assert any(not np.allclose(before[k], v.numpy())
             for k, v in learner.meta_params().items())
