"""Acting with an agent network: sampled and greedy actions for a batch.

Every agent acts with head 0 of its network (STACX's acting head; the only
head otherwise). The behaviour log-probability returned with a sampled action
is what the actor writes into `Trajectory.behaviour_log_prob`.
"""

import tensorflow as tf


class Policy(tf.Module):
  """Batched policy over a built `networks.AgentNetwork`.

  Args:
    network: the agent network (its variables are read at call time, so a
      policy follows the weights the actor last copied in).
  """

  def __init__(self, network, name="policy"):
    super().__init__(name=name)
    self.network = network

  def _distribution(self, observation):
    return self.network.acting_policy(observation)

  def sample(self, observation, seed):
    """(actions, behaviour log-probs) for `observation [B, ...]`.

    Args:
      observation: a batch of observations.
      seed: int32/int64 tensor of shape [2], a stateless-random seed.
    """
    dist = self._distribution(observation)
    actions, log_prob = dist.sample(seed)
    return actions, tf.cast(log_prob, tf.float32)

  def greedy(self, observation):
    """Most likely action (argmax, or tanh of the Gaussian mean)."""
    return self._distribution(observation).mode()
