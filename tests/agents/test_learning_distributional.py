"""STAC, STACX and FRODO learn the chain with a 4-quantile value head
(Yin et al.'s (2023) distributional critic composed with each agent)."""

import pytest

from tests.agents import chain


@pytest.mark.parametrize("agent,overrides,unroll", [
    ("stac", {}, 6),
    ("stacx", {"num_heads": 2}, 6),
    ("frodo", {"num_inner_steps": 2}, 12),
])
def test_agent_learns_the_chain_with_quantile_values(agent, overrides,
                                                     unroll):
  learner, before, after, meta0, meta1, metrics = chain.train(
      agent, 150, unroll=unroll, distributional=True, num_quantiles=4,
      **overrides)
  assert learner.network.num_quantiles == 4
  chain.assert_learned(agent, before, after, meta0, meta1, metrics)
