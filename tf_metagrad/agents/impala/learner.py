"""IMPALA learner: one V-trace actor-critic update per step (STAC eq. 1-2)."""

from typing import Optional

import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.impala import config as impala_config


class ImpalaLearner(actor_critic.ActorCriticLearner):
  """No metaparameters: the inner loss is the fixed-hyperparameter loss."""

  def __init__(self, config: impala_config.ImpalaConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    super().__init__(config, network, meta_specs=(), strategy=strategy)
