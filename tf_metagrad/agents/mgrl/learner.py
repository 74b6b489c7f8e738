"""MGRL learner: meta-gradient on sigmoid(gamma), sigmoid(lambda)."""

from tf_metagrad.agents import actor_critic


class MgrlLearner(actor_critic.ActorCriticLearner):

  def __init__(self, config, network, strategy=None):
    specs = [actor_critic.MetaSpec(name) for name in config.eta_names()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
