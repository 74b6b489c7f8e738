"""The meta-gradient agents learn the chain with a Box action (squashed
Gaussian policy, STAC section 4.2), and move every metaparameter."""

import pytest

from tests.agents import chain


@pytest.mark.parametrize("agent,overrides,unroll", [
    ("mgrl", {}, 6),
    ("stacx", {"num_heads": 2}, 6),
    # One update per step; the default (swapped halves) learns the chain
    # in test_learning.py.
    ("drmg", {"num_quantiles": 4, "outer_batch": "same"}, 6),
    ("frodo", {"num_inner_steps": 2}, 12),
])
def test_agent_learns_the_chain_with_continuous_actions(agent, overrides,
                                                        unroll):
  learner, before, after, meta0, meta1, metrics = chain.train(
      agent, 150, unroll=unroll, continuous=True, reward_clip=None,
      **overrides)
  assert learner.network.action_dim == 1
  chain.assert_learned(agent, before, after, meta0, meta1, metrics,
                       continuous=True)
