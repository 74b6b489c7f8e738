"""Non-stationary 5-state random walk (FRODO reimplementation, Qiu (2021) 4.1.2).

A chain of `num_states` states; every episode starts in the centre state
(index num_states // 2). Each step moves one state left or right; stepping
off the left end gives the current left reward and ends the episode, off the
right end gives `right_reward` (1) and ends it; all other rewards are 0.

Non-stationarity. The left reward follows a lifetime clock n = number of
environment steps this copy has taken since it was seeded (it is NOT reset
between episodes). The step with 0-based index n uses
`left_rewards[(n // switch_every) % 2]`: with the defaults, steps 0..959 use
0, steps 960..1919 use -1, steps 1920..2879 use 0 again, and so on. The
switch therefore happens at step index 960 (the 961st step), which the seed
describes as "every 960 time-steps, 10 iterations of FRODO".

Moves. With `random_moves=True` (the seed's prediction setting) the action
is validated but ignored and each move is left or right with probability
1/2. With `random_moves=False`, action 0 moves left and action 1 right, so a
learned policy can drive the walk.

Observation: float32 one-hot `[num_states]` of the agent's state; the
observation returned with a terminal step is all zeros (off the chain).

`true_values(discount)` gives the exact state values of the uniformly random
policy under the left reward of the NEXT step, by solving the Bellman linear
system (I - discount P) v = r, for value-RMSE evaluation.
"""

from typing import Dict, Optional, Sequence

import numpy as np

from tf_metagrad.envs import toy


def random_walk_values(num_states: int, left_reward: float,
                       right_reward: float, discount: float) -> np.ndarray:
  """State values of the uniformly random policy on the chain.

  Solves v = r + discount * P v where P moves to each neighbour with
  probability 1/2 and r holds the expected exit reward (half the end reward
  in the two end states); exits are absorbing with value 0.

  Args:
    num_states: chain length (>= 1).
    left_reward: reward for leaving through the left end.
    right_reward: reward for leaving through the right end.
    discount: in [0, 1]; 1 is the undiscounted episodic value.

  Returns:
    float64 `[num_states]`.

  Raises:
    ValueError: if `discount` is outside [0, 1] or `num_states` < 1.
  """
  if not 0.0 <= discount <= 1.0:
    raise ValueError(f"discount must lie in [0, 1], got {discount}.")
  if num_states < 1:
    raise ValueError(f"num_states must be >= 1, got {num_states}.")
  transition = np.zeros((num_states, num_states))
  index = np.arange(num_states - 1)
  transition[index, index + 1] = 0.5
  transition[index + 1, index] = 0.5
  expected_reward = np.zeros(num_states)
  expected_reward[0] += 0.5 * left_reward
  expected_reward[-1] += 0.5 * right_reward
  return np.linalg.solve(np.eye(num_states) - discount * transition,
                         expected_reward)


class RandomWalkCore(toy.ToyCore):
  """K copies of the non-stationary random walk.

  Attributes:
    state: int64 `[K]` current state, -1 once the walk has exited.
  """

  def __init__(self, num_envs: int, num_states: int = 5,
               switch_every: int = 960,
               left_rewards: Sequence[float] = (0.0, -1.0),
               right_reward: float = 1.0, random_moves: bool = True) -> None:
    """Builds the copies.

    Args:
      num_envs: K.
      num_states: chain length (odd keeps the start exactly central).
      switch_every: lifetime steps between left-reward switches.
      left_rewards: (first, second) left-exit rewards, alternating.
      right_reward: right-exit reward.
      random_moves: ignore actions and move uniformly at random.
    """
    super().__init__(num_envs)
    if isinstance(num_states, bool) or not isinstance(num_states, int) or (
        num_states < 1):
      raise ValueError(f"num_states must be an int >= 1, got {num_states!r}.")
    if isinstance(switch_every, bool) or not isinstance(switch_every, int) or (
        switch_every < 1):
      raise ValueError(
          f"switch_every must be an int >= 1, got {switch_every!r}.")
    if len(left_rewards) != 2:
      raise ValueError(f"left_rewards must hold 2 values, got "
                       f"{left_rewards!r}.")
    self.num_states = num_states
    self.switch_every = switch_every
    self.left_rewards = np.asarray(left_rewards, np.float64)
    self.right_reward = float(right_reward)
    self.random_moves = bool(random_moves)
    self.observation_shape = (num_states,)
    self.num_actions = 2
    self.state = np.full(self.num_envs, num_states // 2, np.int64)

  def current_left_reward(self) -> np.ndarray:
    """float64 `[K]` left-exit reward that the next step would pay."""
    phase = (self.total_steps // self.switch_every) % 2
    return self.left_rewards[phase]

  def true_values(self, discount: float = 1.0) -> np.ndarray:
    """Random-policy state values for the next step's reward, `[K, S]`."""
    left = self.current_left_reward()
    table = {
        value: random_walk_values(self.num_states, value, self.right_reward,
                                  discount) for value in set(left.tolist())
    }
    return np.stack([table[value] for value in left.tolist()])

  def info(self) -> Dict[str, np.ndarray]:
    info = super().info()
    info["left_reward"] = self.current_left_reward()
    return info

  def _reset(self, mask: np.ndarray) -> None:
    self.state[mask] = self.num_states // 2

  def _step(self, actions: np.ndarray):
    if self.random_moves:
      right = self.rng.uniform()[:, 0] >= 0.5
    else:
      right = actions == 1
    left_reward = self.current_left_reward()
    self.state = self.state + np.where(right, 1, -1)
    exit_left = self.state < 0
    exit_right = self.state >= self.num_states
    terminated = exit_left | exit_right
    reward = np.where(exit_left, left_reward,
                      np.where(exit_right, self.right_reward, 0.0))
    self.state[terminated] = -1
    return reward, terminated, np.zeros(self.num_envs, bool)

  def observe(self) -> np.ndarray:
    obs = np.zeros((self.num_envs, self.num_states), np.float32)
    inside = self.state >= 0
    obs[np.flatnonzero(inside), self.state[inside]] = 1.0
    return obs


class RandomWalkEnv(toy.ToyEnv):
  """Single random walk (Gymnasium id `tf_metagrad/RandomWalk-v0`).

  Constructor: `RandomWalkEnv(seed=None, num_states=5, switch_every=960,
  left_rewards=(0.0, -1.0), right_reward=1.0, random_moves=True)`.
  """

  core_class = RandomWalkCore

  def __init__(self, seed: Optional[int] = None, num_states: int = 5,
               switch_every: int = 960,
               left_rewards: Sequence[float] = (0.0, -1.0),
               right_reward: float = 1.0, random_moves: bool = True) -> None:
    super().__init__(seed=seed, num_states=num_states,
                     switch_every=switch_every, left_rewards=left_rewards,
                     right_reward=right_reward, random_moves=random_moves)

  def true_values(self, discount: float = 1.0) -> np.ndarray:
    """Random-policy values `[num_states]` for the next step's left reward."""
    return self.core.true_values(discount)[0]
