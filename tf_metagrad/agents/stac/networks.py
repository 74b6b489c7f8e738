"""STAC's network: one policy/value head on the domain's torso (STAC
Table 2), scalar or quantile value.

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents import networks


def make_network(config, observation_spec, action_space):
  """The built agent network (see `agents.networks.make_network`)."""
  return networks.make_network(config, observation_spec, action_space)
