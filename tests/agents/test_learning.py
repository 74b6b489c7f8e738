"""Every agent improves its policy on the 3-state chain and moves its eta."""

import pytest

from tests.agents import chain


@pytest.mark.parametrize("agent,overrides,unroll", [
    ("impala", {}, 6),
    ("mgrl", {}, 6),
    ("mgrl", {"gamma_embedding": False}, 6),
    ("stac", {}, 6),
    ("stacx", {"num_heads": 2}, 6),
    ("drmg", {"num_quantiles": 4}, 6),
    ("frodo", {"num_inner_steps": 2}, 12),
])
def test_agent_learns_the_chain(agent, overrides, unroll):
  learner, before, after, meta0, meta1, metrics = chain.train(
      agent, 150, unroll=unroll, **overrides)
  chain.assert_learned(agent, before, after, meta0, meta1, metrics)


def test_stac_learns_with_continuous_actions():
  _, before, after, meta0, meta1, metrics = chain.train(
      "stac", 150, continuous=True, reward_clip=None)
  chain.assert_learned("stac", before, after, meta0, meta1, metrics,
                       continuous=True)
