"""STACX learner: per-head eta_i, heads' inner losses averaged (Alg. 2 l. 11)."""

from typing import Optional

import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.stacx import config as stacx_config


class StacxLearner(actor_critic.ActorCriticLearner):
  """n heads x |eta| scalar metaparameters, keyed "<name>/head<i>"."""

  def __init__(self, config: stacx_config.StacxConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    specs = [actor_critic.MetaSpec(name, head=head)
             for head in range(config.num_heads)
             for name in config.eta_names()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
