"""DrMG learner: quantile critic, per-quantile adaptive return (seed 002)."""

from tf_metagrad.agents import actor_critic


class DrmgLearner(actor_critic.ActorCriticLearner):
  """Meta-learns `config.meta_shapes()` through the shared actor-critic loss.

  With the defaults |eta| = 3N + 3: gamma, lambda and w_Z (g_v) are N-vectors
  (one per quantile, eq. 10), alpha, w_pi (g_p) and w_H (g_e) are scalars.
  """

  def __init__(self, config, network, strategy=None):
    specs = [actor_critic.MetaSpec(name, tuple(shape))
             for name, shape in config.meta_shapes().items()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)
