"""STACX's network: `num_heads` policy/value heads on one shared torso
(STAC section 3.2); head 0 acts.

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents.networks import make_network  # pylint: disable=unused-import
