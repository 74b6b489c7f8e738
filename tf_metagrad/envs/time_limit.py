"""TimeLimit: a task whose value is known, ended only by a time limit.

Every step pays `reward` (1 by default), no state is terminal, and the episode
is truncated after `horizon` (H) steps. The observation is a clock: the
one-hot of (steps taken in the episode) mod H, float32 `[H]`, so the final
observation of an episode shows the same clock as the first of the next
(and its value is learned there). The `num_actions` actions do nothing.
With discount gamma the value of every state is reward / (1 - gamma): the
limit is not part of the task (Pardo et al. 2018, "Time limits in
reinforcement learning"), so a learner that bootstraps across it learns
that value at every position, while one that treats the limit as a
terminal state learns reward (1 - gamma^(H - k)) / (1 - gamma) at position
k, only `reward` at the last. It is the check that time limits
bootstrap (`tests/agents/test_time_limits.py`).
"""

from typing import Optional

import numpy as np

from tf_metagrad.envs import toy


class TimeLimitCore(toy.ToyCore):
  """K copies of TimeLimit.

  Attributes:
    position: int64 `[K]` steps taken in the current episode.
  """

  def __init__(self, num_envs: int, horizon: int = 10, reward: float = 1.0,
               num_actions: int = 2) -> None:
    """Builds the copies.

    Args:
      num_envs: K.
      horizon: H >= 1, steps after which an episode is truncated.
      reward: paid on every step.
      num_actions: size of the (inert) action set, >= 1.
    """
    super().__init__(num_envs)
    for name, value in (("horizon", horizon), ("num_actions", num_actions)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}.")
      if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    self.horizon = int(horizon)
    self.reward = float(reward)
    self.observation_shape = (self.horizon,)
    self.num_actions = int(num_actions)
    self.position = np.zeros(self.num_envs, np.int64)

  def _reset(self, mask: np.ndarray) -> None:
    self.position[mask] = 0

  def _step(self, actions: np.ndarray):
    del actions  # The actions do nothing.
    self.position += 1
    truncated = self.position >= self.horizon
    return (np.full(self.num_envs, self.reward),
            np.zeros(self.num_envs, bool), truncated)

  def observe(self) -> np.ndarray:
    return np.eye(self.horizon, dtype=np.float32)[self.position % self.horizon]


class TimeLimitEnv(toy.ToyEnv):
  """Single TimeLimit environment.

  Constructor: `TimeLimitEnv(seed=None, horizon=10, reward=1.0,
  num_actions=2)`.
  """

  core_class = TimeLimitCore

  def __init__(self, seed: Optional[int] = None, horizon: int = 10,
               reward: float = 1.0, num_actions: int = 2) -> None:
    super().__init__(seed=seed, horizon=horizon, reward=reward,
                     num_actions=num_actions)
