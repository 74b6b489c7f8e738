"""Acting with an agent network: sampled and greedy actions for a batch.

Every agent acts with head 0 of its network (STACX's acting head; the only
head otherwise). The behaviour log-probability returned with a sampled action
is what the actor writes into `Trajectory.behaviour_log_prob`.

A recurrent network (LSTM core, STAC supplement Table 2) carries a state from
step to step: `initial_state(B)` before an episode's first observation, then
the state each `*_step` call returns. Feed-forward networks use the state
`()`, and `sample` / `greedy` act without one.
"""

from typing import Any, Optional, Sequence, Tuple, Union

import tensorflow as tf
from tensorflow.types.experimental import TensorLike

from tf_metagrad.agents import networks as networks_lib

class Policy(tf.Module):
  """Batched policy over a built `networks.AgentNetwork`.

  Args:
    network: the agent network (its variables are read at call time, so a
      policy follows the weights the actor last copied in).
  """

  def __init__(self, network: networks_lib.AgentNetwork,
               name: str = "policy") -> None:
    super().__init__(name=name)
    self.network = network

  @property
  def recurrent(self) -> bool:
    return self.network.recurrent

  def initial_state(self,
                    batch_size: Union[int, tf.Tensor]) -> Tuple[tf.Tensor, ...]:
    """Zero state of `batch_size` sequences (a tuple of tensors, or ())."""
    return self.network.initial_state(batch_size)

  def state_spec(self) -> Tuple[tf.TensorSpec, ...]:
    """Per-example `tf.TensorSpec`s of the state (no batch dimension)."""
    return self.network.core_state_spec()

  def sample_step(self, observation: Any, state: Optional[Sequence[tf.Tensor]],
                  seed: TensorLike
                  ) -> Tuple[tf.Tensor, tf.Tensor, Tuple[tf.Tensor, ...]]:
    """(actions, behaviour log-probs, next state) for `observation [B, ...]`.

    Args:
      observation: a batch of observations.
      state: the state before `observation` (see `initial_state`).
      seed: int32/int64 tensor of shape [2], a stateless-random seed.
    """
    dist, state = self.network.acting_step(observation, state)
    actions, log_prob = dist.sample(seed)
    return actions, tf.cast(log_prob, tf.float32), state

  def greedy_step(self, observation: Any,
                  state: Optional[Sequence[tf.Tensor]]
                  ) -> Tuple[tf.Tensor, Tuple[tf.Tensor, ...]]:
    """(most likely action, next state); see `greedy`."""
    dist, state = self.network.acting_step(observation, state)
    return dist.mode(), state

  def sample(self, observation: Any,
             seed: TensorLike) -> Tuple[tf.Tensor, tf.Tensor]:
    """`sample_step` of a feed-forward policy: (actions, log-probs)."""
    actions, log_prob, _ = self.sample_step(observation, (), seed)
    return actions, log_prob

  def greedy(self, observation: Any) -> tf.Tensor:
    """Most likely action (argmax, or tanh of the Gaussian mean) of a
    feed-forward policy."""
    return self.greedy_step(observation, ())[0]
