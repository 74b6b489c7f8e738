"""Every agent improves its policy on the 3-state chain and moves its eta."""

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad.agents import actor
from tf_metagrad.agents import networks
from tests.agents import chain

SMALL = dict(mlp_hidden_sizes=(32,), head_hidden_sizes=(32,),
             learning_rate=3e-3, meta_learning_rate=3e-2, gamma=0.9,
             max_grad_norm=40.0)


def _train(agent, steps, unroll=6, batch=16, continuous=False, lag=3,
           **overrides):
  """Trains on chain rollouts of an actor whose weights lag `lag` updates
  behind the learner's, so the data are off-policy as in IMPALA."""
  spec = tf.TensorSpec([chain.NUM_STATES], tf.float32)
  space = (gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous
           else gymnasium.spaces.Discrete(2))
  learner = agents.make_learner(agent, spec, space,
                                **dict(SMALL, **overrides))
  acting = networks.make_network(learner.config, spec, space)
  sample = tf.function(actor.Policy(acting).sample)
  env = chain.Chain(batch, continuous=continuous)
  before_meta = {k: v.numpy() for k, v in learner.meta_params().items()}
  before = chain.probability_right(learner.network)
  for step in range(steps):
    if step % lag == 0:
      for dst, src in zip(acting.variables, learner.network.variables):
        dst.assign(src)
    batch_traj = chain.rollout(
        type("P", (), {"sample": staticmethod(sample)}), env, unroll, step)
    metrics = learner.step(batch_traj)
  after = chain.probability_right(learner.network)
  after_meta = {k: v.numpy() for k, v in learner.meta_params().items()}
  return learner, before, after, before_meta, after_meta, metrics


@pytest.mark.parametrize("agent,overrides,unroll", [
    ("impala", {}, 6),
    ("mgrl", {}, 6),
    ("mgrl", {"gamma_embedding": True}, 6),
    ("stac", {}, 6),
    ("stacx", {"num_heads": 2}, 6),
    ("drmg", {"num_quantiles": 4}, 6),
    ("frodo", {"num_inner_steps": 2}, 12),
])
def test_agent_learns_the_chain(agent, overrides, unroll):
  learner, before, after, meta0, meta1, metrics = _train(
      agent, 150, unroll=unroll, **overrides)
  assert np.all(before < 0.8), before
  assert np.all(after > 0.9), (before, after)
  assert float(metrics["skipped_updates"]) == 0
  for name in meta0:
    assert not np.allclose(meta0[name], meta1[name]), (
        f"{agent}: metaparameter {name} did not move")


def test_stac_learns_with_continuous_actions():
  _, before, after, meta0, meta1, _ = _train(
      "stac", 150, continuous=True, reward_clip=None)
  assert np.all(after > 0.9) and after.mean() > before.mean() + 0.2, (
      before, after)
  for name in meta0:
    assert not np.allclose(meta0[name], meta1[name]), name
