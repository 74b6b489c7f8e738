"""MGRL's network: one policy/value head on the domain's torso, conditioned
on gamma through a learned embedding by default (Xu et al. 2018 section 1.4,
STAC supplement 9.5; `gamma_embedding=False` drops it).

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents.networks import make_network  # pylint: disable=unused-import
