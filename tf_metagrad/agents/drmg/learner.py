"""DrMG learner: quantile critic, per-quantile adaptive return (Yin et al. (2023))."""

from typing import Optional

import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.drmg import config as drmg_config


class DrmgLearner(actor_critic.ActorCriticLearner):
  """Meta-learns `config.meta_shapes()` through the shared actor-critic loss.

  With the defaults |eta| = 3N + 3: gamma, lambda and w_Z (g_v) are N-vectors
  (one per quantile, eq. 10), alpha, w_pi (g_p) and w_H (g_e) are scalars.
  """

  def __init__(self, config: drmg_config.DrmgConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    specs = [actor_critic.MetaSpec(name, tuple(shape))
             for name, shape in config.meta_shapes().items()]
    super().__init__(config, network, meta_specs=specs, strategy=strategy)

  def _passes(self, batch):
    """(A, B) then (B, A) with the swapped halves (Yin et al. (2023) section 5.2)."""
    first = self._split(batch)
    if self.updates_per_batch == 1:
      return [first]
    inner, outer = first
    return [(inner, outer), (outer, inner)]
