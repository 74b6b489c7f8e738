"""DrMG's network: one policy head and an N-quantile value head on the
domain's torso (seed 002 section 4).

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents import networks


def make_network(config, observation_spec, action_space):
  """The built agent network (see `agents.networks.make_network`)."""
  return networks.make_network(config, observation_spec, action_space)
