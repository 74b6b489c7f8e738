"""STAC's network: one policy/value head on the domain's torso (STAC
Table 2), scalar or quantile value.

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents.networks import make_network  # pylint: disable=unused-import
