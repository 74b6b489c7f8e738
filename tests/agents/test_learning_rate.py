"""The inner learning rate follows STAC Table 3's linear decay, and a learner
step both uses and advances it."""

import numpy as np
import pytest

from tf_metagrad import agents
from tf_metagrad.agents import config as config_lib
from tests.agents import helpers

TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float64")
# STAC Table 3, control column: 1e-3 -> 1e-4 (here over 10 learner steps).
DECAY = dict(learning_rate=1e-3, end_learning_rate=1e-4, decay_steps=10)


def _make(agent, **overrides):
  spec, space = helpers.spaces()
  return agents.make_learner(agent, spec, space, **dict(TINY, **overrides))


@pytest.mark.parametrize("step,expected", [
    (0, 1e-3), (5, 5.5e-4), (7, 1e-3 - 0.7 * 9e-4), (10, 1e-4), (25, 1e-4)])
def test_learning_rate_follows_the_linear_schedule(step, expected):
  learner = _make("impala", **DECAY)
  np.testing.assert_allclose(float(learner.learning_rate(step)), expected,
                             rtol=1e-12)


def test_a_learner_step_uses_and_advances_the_learning_rate():
  decayed = _make("impala", **DECAY)
  constant = _make("impala", learning_rate=1e-3)
  for a, b in zip(decayed.variables, constant.variables):
    b.assign(a)
  start = [v.numpy() for v in decayed.network.trainable_variables]
  m1 = decayed.step(helpers.random_trajectory(np.random.default_rng(0), 4, 3))
  constant.step(helpers.random_trajectory(np.random.default_rng(0), 4, 3))
  np.testing.assert_allclose(float(m1["learning_rate"]), 1e-3, rtol=1e-6)
  assert int(decayed.learner_steps) == 1
  np.testing.assert_allclose(float(decayed.learning_rate()), 9.1e-4,
                             rtol=1e-12)
  # Step 0 ran at 1e-3 in both learners, so they still agree.
  for a, b in zip(decayed.network.trainable_variables,
                  constant.network.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  middle = [v.numpy() for v in decayed.network.trainable_variables]
  batch = helpers.random_trajectory(np.random.default_rng(1), 4, 3)
  m2 = decayed.step(batch)
  constant.step(batch)
  np.testing.assert_allclose(float(m2["learning_rate"]), 9.1e-4, rtol=1e-6)
  # Same state and gradient, so the RMSProp step scales with the learning
  # rate: 9.1e-4 / 1e-3 of the constant learner's step.
  for before, a, b in zip(middle, decayed.network.trainable_variables,
                          constant.network.trainable_variables):
    np.testing.assert_allclose(a.numpy() - before,
                               0.91 * (b.numpy() - before), rtol=1e-9,
                               atol=1e-15)
  assert any(not np.array_equal(s, m) for s, m in zip(start, middle))


def test_constant_learning_rate_without_decay():
  learner = _make("stac", learning_rate=2e-3)
  assert learner.config.end_learning_rate is None
  learner.step(helpers.random_trajectory(np.random.default_rng(0), 4, 3))
  np.testing.assert_allclose(float(learner.learning_rate()), 2e-3, rtol=1e-12)
  # An end value equal to the start is no decay either, so it is accepted.
  agents.make_config("stac", learning_rate=2e-3, end_learning_rate=2e-3)


def test_control_defaults_decay_over_the_given_steps():
  config = agents.make_config("stac", **config_lib.control_defaults(100))
  spec, space = helpers.spaces()
  learner = agents.make_learner("stac", spec, space, **TINY,
                                **config_lib.control_defaults(100))
  assert (config.learning_rate, config.end_learning_rate,
          config.decay_steps) == (1e-3, 1e-4, 100)
  np.testing.assert_allclose(float(learner.learning_rate(50)), 5.5e-4,
                             rtol=1e-12)
