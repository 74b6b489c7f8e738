"""metagradient() with Box actions (squashed Gaussian policy, KL-to-normal
regulariser; STAC section 4.2) against float64 finite differences."""

import numpy as np
import pytest

from tf_metagrad import agents
from tests import finite_differences as fd
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
def test_metagradient_matches_finite_differences(agent, overrides, expected,
                                                fd_seed):
  rng = np.random.default_rng(fd.shaken(1, fd_seed))
  learner = _continuous_learner(agent, **overrides)
  for i, var in enumerate(learner._meta_variables().values()):
    var.assign(var - 3.0 + 0.4 * (i % 3))
  inner = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  outer = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  report = helpers.fd_check(learner, inner, outer, rng)
  assert len(report.labels) == expected


def test_frodo_metagradient_matches_finite_differences(fd_seed):
  rng = np.random.default_rng(fd.shaken(4, fd_seed))
  learner = _continuous_learner("frodo", num_inner_steps=1, meta_units=4)
  inner = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  outer = helpers.random_trajectory(rng, 4, 3, action_dim=2)
  helpers.fd_check(learner, inner, outer, rng, entries=2, directions=2)
