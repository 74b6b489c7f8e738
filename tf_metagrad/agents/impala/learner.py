"""IMPALA learner: one V-trace actor-critic update per step (STAC eq. 1-2)."""

from tf_metagrad.agents import actor_critic


class ImpalaLearner(actor_critic.ActorCriticLearner):
  """No metaparameters: the inner loss is the fixed-hyperparameter loss."""

  def __init__(self, config, network, strategy=None):
    super().__init__(config, network, meta_specs=(), strategy=strategy)
