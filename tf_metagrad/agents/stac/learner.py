"""STAC learner: self-tunes eta through a one-step meta-gradient (Alg. 2)."""

from typing import Optional

import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.stac import config as stac_config


class StacLearner(actor_critic.ActorCriticLearner):
  """One head; eta = `config.eta_names()`, each a scalar logit."""

  def __init__(self, config: stac_config.StacConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    specs = [actor_critic.MetaSpec(name) for name in config.eta_names()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
