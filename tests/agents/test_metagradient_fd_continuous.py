"""metagradient() with Box actions (squashed Gaussian policy, KL-to-normal
regulariser; STAC section 4.2) against float64 finite differences."""

import numpy as np
import pytest

from tf_metagrad import agents
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
            learning_rate=0.05, max_grad_norm=None, reward_clip=None)


def _continuous_learner(agent, **overrides):
  spec, space = helpers.spaces(action_dim=2)
  learner = agents.make_learner(agent, spec, space, **TINY, **overrides)
  assert learner.network.action_dim == 2
  return learner


@pytest.mark.parametrize("agent,overrides,expected", [
    ("mgrl", {}, 2),
    ("stac", {}, 6),
    ("stacx", {"num_heads": 2}, 12),
    ("drmg", {"num_quantiles": 3}, 3 * 3 + 3),
])
def test_metagradient_matches_finite_differences(agent, overrides, expected):
  rng = np.random.default_rng(1)
  learner = _continuous_learner(agent, **overrides)
  for i, var in enumerate(learner._meta_variables().values()):
    var.assign(var - 3.0 + 0.4 * (i % 3))
  inner = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  outer = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  assert helpers.fd_check_every_entry(learner, inner, outer) == expected


def test_frodo_metagradient_matches_finite_differences():
  rng = np.random.default_rng(4)
  learner = _continuous_learner("frodo", num_inner_steps=1, meta_units=4)
  inner = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  outer = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  analytic, _ = helpers.fd_check_direction(learner, inner, outer, rng)
  assert abs(analytic) > 1e-8
