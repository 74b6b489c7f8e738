"""Two-colours key/door grid world (DrMG, Yin et al. (2023) section 5.1).

A `size` x `size` open grid (default 7 x 7, no inner walls; moves into the
border are clipped) holds the agent, two keys of different colours and a
goal (door). At every episode start the four objects are placed on four
distinct cells drawn uniformly at random.

Rules (our design; the seed gives only the reward values):
  * actions: 0 = up, 1 = down, 2 = left, 3 = right;
  * every step costs `step_penalty` (r_pen);
  * stepping on a key pays its current value and the agent now holds a key;
    both keys then vanish, so one key is collected per episode and the choice
    of colour is what the toggle makes non-stationary;
  * stepping on the goal while holding a key pays `goal_reward` (+1) and
    terminates the episode; without a key the goal is just a floor cell;
  * the episode is truncated after `horizon` (T) steps.

Key values. Key 0 is worth `key_rewards[0]` (0.7) and key 1
`key_rewards[1]` (0.3) while the lifetime phase (n // toggle_every) % 2 is 0,
and the two values are swapped while it is 1, where n is the 0-based index of
the step among all steps this copy has taken since it was seeded (not reset
between episodes). With toggle_every = 100_000, steps 0..99_999 pay 0.7 for
key 0 and step 100_000 is the first that pays 0.3 for it.

Return of the key-agnostic optimal behaviour. An agent that walks a shortest
path to one key, picked without regard to colour, and then to the goal gets
key value + 1 - r_pen * L in L steps; averaged over the two colours that is
0.5 + 1 - r_pen * L = 1.5 - r_pen * T with T the episode's length, the
seed's "+1.5 - r_pen * T". Were both keys collectable the optimum would be
2 - r_pen * T whatever the values, and the toggle would not matter.

Defaults. r_pen = 0.01 and T = 50: on a 7 x 7 grid a shortest
agent -> key -> goal path is at most 12 + 12 = 24 steps, so T leaves over
twice that for exploration, and the penalty of any detour (<= 24 * 0.01 =
0.24) is below the 0.4 value gap between the keys, so the currently better
key is always worth fetching while slow episodes are still penalised.

Observation: float32 `[size, size, 4]` one-hot image; channel 0 = agent,
1 = key 0 (while present), 2 = key 1 (while present), 3 = goal. Keys vanish
once one is taken, so holding a key is visible and the state is Markov except
for the hidden toggle phase.
"""

from typing import Dict, Optional, Sequence

import numpy as np

from tf_metagrad.envs import toy

# Row / column deltas of actions up, down, left, right.
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int64)


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
      value < minimum):
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
  return int(value)


class TwoColorsCore(toy.ToyCore):
  """K copies of the two-colours grid world.

  Attributes:
    agent: int64 `[K, 2]` (row, column).
    keys: int64 `[K, 2, 2]` key positions, key index first.
    keys_present: bool `[K]`, False once a key was taken this episode.
    goal: int64 `[K, 2]`.
    has_key: bool `[K]`.
    episode_steps: int64 `[K]` steps taken in the current episode.
  """

  def __init__(self, num_envs: int, size: int = 7,
               key_rewards: Sequence[float] = (0.7, 0.3),
               goal_reward: float = 1.0, step_penalty: float = 0.01,
               horizon: int = 50, toggle_every: int = 100_000) -> None:
    """Builds the copies.

    Args:
      num_envs: K.
      size: grid side (>= 2, so that four distinct cells exist).
      key_rewards: values of keys 0 and 1 in phase 0 (swapped in phase 1).
      goal_reward: reward for reaching the goal with a key.
      step_penalty: r_pen subtracted on every step.
      horizon: T, steps after which the episode is truncated.
      toggle_every: lifetime steps between swaps of the key values.
    """
    super().__init__(num_envs)
    self.size = _check_positive_int(size, "size", 2)
    if len(key_rewards) != 2:
      raise ValueError(f"key_rewards must hold 2 values, got "
                       f"{key_rewards!r}.")
    self.key_rewards = np.asarray(key_rewards, np.float64)
    self.goal_reward = float(goal_reward)
    self.step_penalty = float(step_penalty)
    self.horizon = _check_positive_int(horizon, "horizon")
    self.toggle_every = _check_positive_int(toggle_every, "toggle_every")
    self.observation_shape = (self.size, self.size, 4)
    self.num_actions = 4
    k = self.num_envs
    self.agent = np.zeros((k, 2), np.int64)
    self.keys = np.zeros((k, 2, 2), np.int64)
    self.keys_present = np.ones(k, bool)
    self.goal = np.zeros((k, 2), np.int64)
    self.has_key = np.zeros(k, bool)
    self.episode_steps = np.zeros(k, np.int64)

  def current_key_rewards(self) -> np.ndarray:
    """float64 `[K, 2]` values of keys 0 and 1 on the next step."""
    phase = (self.total_steps // self.toggle_every) % 2
    return np.where(phase[:, None] == 0, self.key_rewards,
                    self.key_rewards[::-1])

  def info(self) -> Dict[str, np.ndarray]:
    info = super().info()
    info["key_rewards"] = self.current_key_rewards()
    info["has_key"] = self.has_key.copy()
    return info

  def _reset(self, mask: np.ndarray) -> None:
    cells = self.size * self.size
    # A random permutation per copy (argsort of i.i.d. uniforms); its first
    # four cells are distinct and uniformly placed.
    order = np.argsort(self.rng.uniform(mask, cells), axis=1)[:, :4]
    rows, columns = np.divmod(order, self.size)
    placed = np.stack([rows, columns], axis=-1)  # [K, 4, 2]
    self.agent[mask] = placed[mask, 0]
    self.keys[mask] = placed[mask, 1:3]
    self.goal[mask] = placed[mask, 3]
    self.keys_present[mask] = True
    self.has_key[mask] = False
    self.episode_steps[mask] = 0

  def _step(self, actions: np.ndarray):
    values = self.current_key_rewards()
    self.agent = np.clip(self.agent + _MOVES[actions], 0, self.size - 1)
    on_key = self.keys_present[:, None] & np.all(
        self.agent[:, None, :] == self.keys, axis=-1)
    collected = on_key.any(axis=1)
    key_reward = np.sum(np.where(on_key, values, 0.0), axis=1)
    self.keys_present &= ~collected
    self.has_key |= collected
    opened = self.has_key & np.all(self.agent == self.goal, axis=-1)
    self.episode_steps += 1
    terminated = opened
    truncated = (self.episode_steps >= self.horizon) & ~terminated
    reward = key_reward + self.goal_reward * opened - self.step_penalty
    return reward, terminated, truncated

  def observe(self) -> np.ndarray:
    k = self.num_envs
    image = np.zeros((k, self.size, self.size, 4), np.float32)
    copies = np.arange(k)
    image[copies, self.agent[:, 0], self.agent[:, 1], 0] = 1.0
    present = np.flatnonzero(self.keys_present)
    for key in range(2):
      image[present, self.keys[present, key, 0], self.keys[present, key, 1],
            1 + key] = 1.0
    image[copies, self.goal[:, 0], self.goal[:, 1], 3] = 1.0
    return image


class TwoColorsEnv(toy.ToyEnv):
  """Single two-colours grid world (Gymnasium id `tf_metagrad/TwoColors-v0`).

  Constructor: `TwoColorsEnv(seed=None, size=7, key_rewards=(0.7, 0.3),
  goal_reward=1.0, step_penalty=0.01, horizon=50, toggle_every=100_000)`.
  """

  core_class = TwoColorsCore

  def __init__(self, seed: Optional[int] = None, size: int = 7,
               key_rewards: Sequence[float] = (0.7, 0.3),
               goal_reward: float = 1.0, step_penalty: float = 0.01,
               horizon: int = 50, toggle_every: int = 100_000) -> None:
    super().__init__(seed=seed, size=size, key_rewards=key_rewards,
                     goal_reward=goal_reward, step_penalty=step_penalty,
                     horizon=horizon, toggle_every=toggle_every)
