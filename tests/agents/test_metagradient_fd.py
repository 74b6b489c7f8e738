"""metagradient() against float64 central finite differences, every eta."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
            learning_rate=0.05, max_grad_norm=None)


def _fd_check(learner, inner, outer, eps=1e-5, rtol=1e-5):
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
        meta = dict(base)
        meta[name] = tf.constant(moved.reshape(logits.shape))
        return float(learner.outer_loss_after_inner_update(
            inner, outer, meta_params=meta))
      numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
      analytic = grads[name].numpy().reshape(-1)[i]
      scale = max(abs(numeric), abs(analytic), 1e-8)
      assert abs(numeric - analytic) / scale <= rtol, (
          f"{name}[{i}]: analytic {analytic:.10g} vs numeric {numeric:.10g}")
      checked += 1
  return checked


@pytest.mark.parametrize("agent,overrides,expected", [
    ("mgrl", {}, 2),
    ("mgrl", {"gamma_embedding": True, "gamma_embedding_size": 3}, 2),
    ("stac", {}, 6),
    ("stac", {"separate_alphas": True}, 7),
    ("stacx", {"num_heads": 2}, 12),
    ("stac", {"distributional": True, "num_quantiles": 3}, 6),
    ("stacx", {"num_heads": 2, "distributional": True, "num_quantiles": 2},
     12),
    ("drmg", {"num_quantiles": 3}, 3 * 3 + 3),
    ("drmg", {"num_quantiles": 3, "scalar_eta": True}, 6),
    ("drmg", {"num_quantiles": 3, "n_step": 3}, 3 + 3 + 2),
    ("drmg", {"num_quantiles": 3, "variant": "eta1"}, 3 + 2),
    ("drmg", {"num_quantiles": 3, "distributional_advantage": "vtrace",
              "outer_batch": "split"}, 12),
])
def test_metagradient_matches_finite_differences(agent, overrides, expected):
  rng = np.random.default_rng(0)
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space, **TINY, **overrides)
  # Move the logits off their common init so every eta matters differently.
  for i, var in enumerate(learner._meta_variables().values()):
    var.assign(var + 0.3 * (i % 3) - 2.0)
  inner = helpers.random_trajectory(rng, 4, 3)
  outer = helpers.random_trajectory(rng, 4, 3)
  assert _fd_check(learner, inner, outer) == expected


def test_metagradient_continuous_stac():
  rng = np.random.default_rng(1)
  spec, space = helpers.spaces(action_dim=2)
  learner = agents.make_learner("stac", spec, space, reward_clip=None, **TINY)
  for var in learner._meta_variables().values():
    var.assign(var - 3.0)
  batch = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  assert _fd_check(learner, batch, batch) == 6


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
