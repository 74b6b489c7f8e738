"""metagradient() against float64 central finite differences, every eta."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
            learning_rate=0.05, max_grad_norm=None)


def _spread_logits(learner):
  """Moves the logits off their common init so every eta matters
  differently."""
  for i, var in enumerate(learner._meta_variables().values()):
    var.assign(var + 0.3 * (i % 3) - 2.0)


@pytest.mark.parametrize("agent,overrides,expected", [
    ("mgrl", {"gamma_embedding_size": 3}, 2),
    ("mgrl", {"gamma_embedding": False}, 2),
    ("stac", {}, 6),
    ("stac", {"separate_alphas": True, "padding": True}, 7),
    ("stac", {"head_hidden_sizes": ()}, 6),
    ("stacx", {"num_heads": 2}, 12),
    ("stac", {"distributional": True, "num_quantiles": 3}, 6),
    ("stacx", {"num_heads": 2, "distributional": True, "num_quantiles": 2},
     12),
    ("drmg", {"num_quantiles": 3}, 3 * 3 + 3),
    ("drmg", {"num_quantiles": 3, "scalar_eta": True}, 6),
    ("drmg", {"num_quantiles": 3, "n_step": 3, "padding": True}, 3 + 3 + 2),
    ("drmg", {"num_quantiles": 3, "variant": "eta1"}, 3 + 2),
    ("drmg", {"num_quantiles": 3, "distributional_advantage": "vtrace"},
     12),
])
def test_metagradient_matches_finite_differences(agent, overrides, expected,
                                                fd_seed):
  # "padding": both batches hold a time-limit padding step (issue #17).
  overrides = dict(overrides)
  padding = overrides.pop("padding", False)
  rng = np.random.default_rng(fd.shaken(0, fd_seed))
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space, **dict(TINY, **overrides))
  _spread_logits(learner)
  inner = helpers.random_trajectory(rng, 4, 3, padding=padding)
  outer = helpers.random_trajectory(rng, 4, 3, padding=padding)
  report = helpers.fd_check(learner, inner, outer, rng)
  assert len(report.labels) == expected


def test_drmg_default_swaps_the_halves_of_the_batch(fd_seed):
  """Yin et al. (2023) section 5.2, the DrMG default: one batch makes two updates,
  inner on half A / outer on half B, then inner on B / outer on A from the
  first update's theta, optimizer state and eta. The second meta-gradient is
  checked there against finite differences (one entry of each
  metaparameter: the first update's are the parametrised test's), and a
  step is the two updates in turn (the replica step run eagerly: traced,
  it costs seconds and adds no logic of ours)."""
  rng = np.random.default_rng(fd.shaken(5, fd_seed))
  spec, space = helpers.spaces()
  config = dict(TINY, num_quantiles=3)
  stepped, manual = (agents.make_learner("drmg", spec, space, **config)
                     for _ in range(2))
  for learner in (stepped, manual):
    _spread_logits(learner)
    assert learner.config.outer_batch == "split"
    assert learner.updates_per_batch == 2
  batch = helpers.random_trajectory(rng, 4, 6)
  (half_a, half_b), swapped = manual._passes(batch)
  np.testing.assert_array_equal(half_a.reward, batch.reward[:, :3])
  np.testing.assert_array_equal(half_b.reward, batch.reward[:, 3:])
  assert swapped == (half_b, half_a)
  manual._update(half_a, half_b)
  report = helpers.fd_check(manual, half_b, half_a, rng, entries=1)
  assert len(report.labels) == 6
  manual._update(half_b, half_a)
  stepped._replica_step(batch)
  assert int(stepped.learner_steps.numpy()) == 2
  assert int(manual.learner_steps.numpy()) == 2
  # Both sides run the same ops eagerly; the bound is still the error
  # model's, in float64: the longest accumulations
  # (gradients over 3 x 4 steps of width-8 layers, their backward, the
  # optimizer steps) have K S < 1e4, so 4 u K S < 5e-12; dropping or
  # reordering a pass moves the weights by more than 1e-4.
  for after_step, after_passes in zip(stepped.variables, manual.variables):
    np.testing.assert_allclose(after_step.numpy(), after_passes.numpy(),
                               rtol=0, atol=5e-12, err_msg=after_step.name)
  with pytest.raises(ValueError, match="at least 2 trajectories .* got "
                     "batch size 1"):
    manual._passes(helpers.random_trajectory(rng, 4, 1))


@pytest.mark.parametrize("agent,overrides,expected", [
    ("stac", {}, 6),
    ("drmg", {"num_quantiles": 3}, 3 * 3 + 3),
])
def test_metagradient_through_active_gradient_clipping(agent, overrides,
                                                       expected, fd_seed):
  rng = np.random.default_rng(fd.shaken(3, fd_seed))
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space,
                                **dict(TINY, max_grad_norm=0.05), **overrides)
  _spread_logits(learner)
  inner = helpers.random_trajectory(rng, 4, 3)
  outer = helpers.random_trajectory(rng, 4, 3)
  params = [tf.convert_to_tensor(v)
            for v in learner.network.trainable_variables]
  _, _, grads, norm = learner.engine.inner_gradients(
      learner._inner_loss, params, learner.meta_params(), inner)
  # Clipping is active (by a wide margin, so finite differences stay on one
  # side of the kink) and the update uses the rescaled gradient.
  assert float(norm) > 4 * 0.05, float(norm)
  np.testing.assert_allclose(float(tf.linalg.global_norm(grads)), 0.05,
                             rtol=1e-12)
  report = helpers.fd_check(learner, inner, outer, rng)
  assert len(report.labels) == expected


def test_metagradient_changes_no_state():
  rng = np.random.default_rng(2)
  spec, space = helpers.spaces()
  learner = agents.make_learner("stac", spec, space, **TINY)
  before = [v.numpy().copy() for v in learner.variables]
  batch = helpers.random_trajectory(rng, 4, 3)
  learner.metagradient(batch, batch)
  learner.outer_loss_after_inner_update(batch, batch)
  for b, v in zip(before, learner.variables):
    np.testing.assert_array_equal(b, v.numpy())


@pytest.mark.parametrize("agent", ["stac", "drmg"])
def test_finite_differences_reject_the_constant_statistics_metagradient(
    agent, fd_seed):
  """The agent-level check catches a meta-gradient that treats RMSProp's
  statistics as constants (the same outer loss, a term dropped)."""
  rng = np.random.default_rng(fd.shaken(4, fd_seed))
  spec, space = helpers.spaces()
  overrides = {"num_quantiles": 3} if agent == "drmg" else {}
  learner = agents.make_learner(agent, spec, space, **TINY, **overrides,
                                differentiate_optimizer_state=False)
  _spread_logits(learner)
  inner = helpers.random_trajectory(rng, 4, 3)
  outer = helpers.random_trajectory(rng, 4, 3)
  with pytest.raises(AssertionError, match="disagree"):
    helpers.fd_check(learner, inner, outer, rng)
