"""Learners with an LSTM core (STAC supplement Table 2) against the acting.

The learner unrolls the core over a trajectory from the actor's stored state,
zeroing it where an episode ended; its outputs must equal the actor's
step-by-step outputs, and its meta-gradient must match float64 central
finite differences.
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad.agents import acting
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
            learning_rate=0.05, max_grad_norm=None, core_units=4)


def _recurrent_trajectory(rng, unroll, batch, units=4):
  trajectory = helpers.random_trajectory(rng, unroll, batch)
  state = tuple(tf.constant(rng.normal(scale=0.5, size=(batch, units)))
                for _ in range(2))
  return trajectory._replace(core_state=state)


def _stepped_logits(network, batch):
  """Head-0 logits `[T+1, B, A]` from stepping the acting policy, zeroing the
  state of a row after each step whose discount is 0 (what the actor does)."""
  policy = acting.Policy(network)
  discount = batch.discount.numpy()
  state = batch.core_state
  logits = []
  for t in range(batch.observation.shape[0]):
    if t > 0:
      keep = tf.constant((discount[t - 1] != 0)[:, None])
      state = tuple(tf.where(keep, s, tf.zeros_like(s)) for s in state)
    dist, state = network.acting_step(batch.observation[t], state)
    logits.append(dist.logits)
    action, _, _ = policy.sample_step(batch.observation[t], state,
                                      tf.constant([0, t], tf.int64))
    assert action.shape == (batch.observation.shape[1],)
  return np.stack([l.numpy() for l in logits])


@pytest.mark.parametrize("agent", ["impala", "stac", "frodo"])
def test_learner_unroll_equals_actor_steps(agent):
  rng = np.random.default_rng(0)
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space, **TINY)
  batch = _recurrent_trajectory(rng, 6, 3)
  discount = batch.discount.numpy()
  discount[1, 2] = 0.0
  batch = batch._replace(discount=tf.constant(discount))
  outputs, reference = learner._forward(None, batch)
  expected = _stepped_logits(learner.network, batch)
  np.testing.assert_allclose(outputs[0][0].numpy(), expected, rtol=0,
                             atol=1e-12)
  np.testing.assert_array_equal(reference[0][0].numpy(),
                                outputs[0][0].numpy())
  # The resets and the stored state both matter: without them the logits
  # after the episode ends (row 0 ends at t = 3, row 2 at t = 1) differ.
  no_reset, _ = learner._forward(None, batch._replace(
      discount=tf.ones_like(batch.discount)))
  gap = np.abs(no_reset[0][0].numpy() - expected).max(axis=(0, 2))
  assert gap[0] > 1e-6 and gap[2] > 1e-6 and gap[1] < 1e-12
  zero_state, _ = learner._forward(None, batch._replace(
      core_state=learner.network.initial_state(3)))
  assert np.abs(zero_state[0][0].numpy()[0] - expected[0]).max() > 1e-6


def test_recurrent_network_rejects_bad_state():
  spec, space = helpers.spaces()
  learner = agents.make_learner("stac", spec, space, **TINY)
  batch = _recurrent_trajectory(np.random.default_rng(1), 3, 2)
  with pytest.raises(ValueError, match="core_state must be the"):
    learner._forward(None, batch._replace(core_state=()))
  with pytest.raises(ValueError, match=r"core_state tensors must have shape"):
    learner._forward(None, batch._replace(
        core_state=tuple(s[:, :3] for s in batch.core_state)))
  with pytest.raises(ValueError, match="core_units must be"):
    agents.make_learner("stac", spec, space, **dict(TINY, core_units=-1))


def test_stac_metagradient_through_the_core_matches_finite_differences(
    fd_seed):
  rng = np.random.default_rng(fd.shaken(2, fd_seed))
  spec, space = helpers.spaces()
  learner = agents.make_learner("stac", spec, space, **TINY)
  for i, var in enumerate(learner._meta_variables().values()):
    var.assign(var + 0.3 * (i % 3) - 2.0)
  inner = _recurrent_trajectory(rng, 4, 3)
  outer = _recurrent_trajectory(rng, 4, 3)
  assert len(helpers.fd_check(learner, inner, outer, rng).labels) == 6
  for name, grad in learner.metagradient(inner, outer).items():
    assert np.all(np.abs(grad.numpy()) > 1e-10), f"{name} has no meta-gradient"


@pytest.mark.parametrize("agent,overrides", [
    ("stac", {}), ("frodo", {"num_inner_steps": 1})])
def test_recurrent_learner_steps_stay_finite(agent, overrides):
  rng = np.random.default_rng(3)
  spec, space = helpers.spaces()
  learner = agents.make_learner(agent, spec, space, **TINY, **overrides)
  core = learner.network.core.trainable_variables
  assert [tuple(v.shape) for v in core] == [(8, 16), (4, 16), (16,)]
  before = [v.numpy().copy() for v in core]
  for _ in range(3):
    metrics = learner.step(_recurrent_trajectory(rng, 4, 4))
    assert all(np.all(np.isfinite(np.asarray(m))) for m in metrics.values())
  assert all(np.abs(v.numpy() - b).max() > 0 for v, b in zip(core, before))


def test_frodo_segments_start_from_the_actor_state():
  """FRODO cuts the unroll into M + 1 segments; each must start from the state
  the acting policy had there, so its logits equal the whole-unroll steps."""
  rng = np.random.default_rng(4)
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=2,
                                **TINY)
  batch = _recurrent_trajectory(rng, 6, 3)
  discount = batch.discount.numpy()
  discount[:] = 1.0
  discount[1, 0] = 0.0   # Row 0 starts a new episode at x_2 (segment 1).
  discount[3, 1] = 0.0   # Row 1 starts a new episode at x_4, a segment start.
  batch = batch._replace(discount=tf.constant(discount))
  expected = _stepped_logits(learner.network, batch)
  inner, outer = learner._split(batch)
  for k, segment in enumerate(inner + [outer]):
    outputs, _ = learner._forward(None, segment)
    np.testing.assert_allclose(outputs[0][0].numpy(),
                               expected[2 * k:2 * k + 3], rtol=0, atol=1e-12)
  # Without the carried state, later segments would restart from x_0's.
  stale, _ = learner._forward(None, outer._replace(core_state=batch.core_state))
  assert np.abs(stale[0][0].numpy() - expected[4:7]).max() > 1e-6


def test_split_outer_batch_slices_the_state_by_row():
  rng = np.random.default_rng(5)
  spec, space = helpers.spaces()
  learner = agents.make_learner("stac", spec, space, outer_batch="split",
                                **TINY)
  batch = _recurrent_trajectory(rng, 3, 4)
  inner, outer = learner._split(batch)
  for half, rows in ((inner, slice(0, 2)), (outer, slice(2, 4))):
    assert half.observation.shape[1] == 2
    for got, full in zip(half.core_state, batch.core_state):
      np.testing.assert_array_equal(got.numpy(), full.numpy()[rows])
  metrics = learner.step(batch)
  assert float(metrics["skipped_updates"]) == 0.0
