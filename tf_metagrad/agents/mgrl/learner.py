"""MGRL learner: meta-gradient on sigmoid(gamma), sigmoid(lambda)."""

from typing import Optional

import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.mgrl import config as mgrl_config


class MgrlLearner(actor_critic.ActorCriticLearner):

  def __init__(self, config: mgrl_config.MgrlConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    specs = [actor_critic.MetaSpec(name) for name in config.eta_names()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
