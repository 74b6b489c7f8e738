"""MGRL's network: one policy/value head on the domain's torso, optionally
conditioned on gamma through a learned embedding (Xu et al. 2018 section 1.4,
`gamma_embedding`).

The construction itself is the shared actor-critic builder
(`agents.networks.make_network`), which reads these choices off the config.
"""

from tf_metagrad.agents.networks import make_network  # pylint: disable=unused-import
