"""STAC learner: self-tunes eta through a one-step meta-gradient (Alg. 2)."""

from tf_metagrad.agents import actor_critic


class StacLearner(actor_critic.ActorCriticLearner):
  """One head; eta = `config.eta_names()`, each a scalar logit."""

  def __init__(self, config, network, strategy=None):
    specs = [actor_critic.MetaSpec(name) for name in config.eta_names()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
