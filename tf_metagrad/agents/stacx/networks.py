"""STACX's network: `num_heads` policy/value heads on one shared torso
(STAC section 3.2); head 0 acts.

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents import networks


def make_network(config, observation_spec, action_space):
  """The built agent network (see `agents.networks.make_network`)."""
  return networks.make_network(config, observation_spec, action_space)
