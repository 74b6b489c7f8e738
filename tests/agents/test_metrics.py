"""Step metrics: the outer loss's terms, STACX's per-head inner losses, the
FRODO meta-network's weight norm."""

import numpy as np
import pytest

from tf_metagrad import agents
from tests.agents import helpers

TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float64",
            learning_rate=0.01)


def _step(agent, unroll=4, **overrides):
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space, **dict(TINY, **overrides))
  batch = helpers.random_trajectory(np.random.default_rng(0), unroll, 3)
  return learner, {k: float(v) for k, v in learner.step(batch).items()}


@pytest.fixture(scope="module")
def stac_metrics():
  """One STAC step's metrics, shared: tracing the step is most of its cost."""
  return _step("stac", g_kl=0.5)[1]


def test_outer_loss_is_the_sum_of_its_logged_terms(stac_metrics):
  metrics = stac_metrics
  assert metrics["outer/entropy_loss"] != 0.0
  np.testing.assert_allclose(
      metrics["outer_loss"],
      metrics["outer/value_loss"] + metrics["outer/policy_loss"]
      + metrics["outer/entropy_loss"] + 0.5 * metrics["outer/kl"],
      rtol=1e-5)


def test_stacx_reports_every_head_and_averages_them(stac_metrics):
  _, metrics = _step("stacx", num_heads=3)
  heads = [metrics[f"head{i}/inner_loss"] for i in range(3)]
  assert "head3/inner_loss" not in metrics
  assert len(set(heads)) == 3
  # STAC Algorithm 2 line 11: the inner loss is the heads' mean.
  np.testing.assert_allclose(metrics["inner_loss"], np.mean(heads),
                             rtol=1e-5)
  assert not any(k.startswith("head") for k in stac_metrics)


def test_frodo_reports_the_meta_network_weight_norm():
  learner, metrics = _step("frodo", unroll=8, num_inner_steps=1,
                           meta_units=4)
  weights = [v.numpy() for v in learner.meta_params().values()]
  expected = np.sqrt(sum(np.sum(np.square(w)) for w in weights))
  np.testing.assert_allclose(metrics["meta/weight_norm"], expected,
                             rtol=1e-6)
  assert learner.meta_values() == {}
