"""DrMG's network: one policy head and an N-quantile value head on the
domain's torso (seed 002 section 4).

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents.networks import make_network  # pylint: disable=unused-import
