"""A recurrent actor writes its core state through Reverb to the learner.

End to end on `catch`: the actor keeps a per-copy LSTM state (STAC
supplement Table 2), zeroes it at episode starts and stores the state before
each unroll; the learner's unroll from that state must reproduce the actor's
behaviour log-probabilities exactly (up to float32 rounding).
"""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs
from tests.system import collection

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}
UNROLL, ENVS = 6, 4


def _collect(config_overrides, unrolls=3):
  spec = runs.RunSpec(agent="stac", env="catch",
                      config_overrides=dict(TINY, **config_overrides), seed=1)
  return collection.collect(spec, ENVS, UNROLL, unrolls, seed=5)


def test_learner_reproduces_the_recurrent_actors_log_probs():
  learner, batches = _collect({"core_units": 8})
  ends = 0
  for k, batch in enumerate(batches):
    hidden, cell = batch.core_state
    assert hidden.shape == (ENVS, 8) and cell.shape == (ENVS, 8)
    # Catch episodes last 9 steps, so unrolls after the first start from a
    # non-zero state; the first starts from the zero initial state.
    assert (np.abs(hidden.numpy()).max() == 0) == (k == 0)
    ends += int(np.sum(batch.discount.numpy() == 0))
    outputs, _ = learner._forward(None, batch)
    policy = learner.network.policy(outputs, 0, time_slice=slice(0, -1))
    np.testing.assert_allclose(policy.log_prob(batch.action).numpy(),
                               batch.behaviour_log_prob.numpy(), atol=1e-5)
  assert ends > 0
  metrics = learner.step(batches[-1])
  assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())


def test_feed_forward_items_have_no_core_state():
  learner, batches = _collect({}, unrolls=1)
  assert batches[0].core_state == ()
  outputs, _ = learner._forward(None, batches[0])
  policy = learner.network.policy(outputs, 0, time_slice=slice(0, -1))
  np.testing.assert_allclose(policy.log_prob(batches[0].action).numpy(),
                             batches[0].behaviour_log_prob.numpy(), atol=1e-5)
  with pytest.raises(ValueError, match="core_state was given"):
    learner.network(batches[0].observation,
                    core_state=(tf.zeros([ENVS, 8]),) * 2)
