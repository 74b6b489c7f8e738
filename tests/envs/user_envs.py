"""Environments a user might write, outside tf_metagrad (tests only).

Importing this module registers the Gymnasium id "Corridor-v0", as a user's
own module would; `make_corridor` builds the same task as a
`dm_env.Environment`. The agent starts at cell `start` (default 0) of a
corridor of `length` cells and is paid 1 on reaching the last one, which
ends the episode; the time limit cuts it otherwise.
"""

import dm_env
from dm_env import specs
import gymnasium
import numpy as np


class Corridor(gymnasium.Env):
  """Gymnasium form: one-hot float64 position, actions 0 (left) / 1 (right).
  """

  metadata = {"render_modes": []}

  def __init__(self, length: int = 5):
    self.length = length
    self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (length,),
                                                  np.float64)
    self.action_space = gymnasium.spaces.Discrete(2)
    self._position = 0

  def _observation(self):
    one_hot = np.zeros(self.length, np.float64)
    one_hot[self._position] = 1.0
    return one_hot

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self._position = 0
    return self._observation(), {}

  def step(self, action):
    move = 1 if int(action) == 1 else -1
    self._position = min(max(self._position + move, 0), self.length - 1)
    at_goal = self._position == self.length - 1
    return self._observation(), float(at_goal), at_goal, False, {}


gymnasium.register(id="Corridor-v0", entry_point=Corridor,
                   max_episode_steps=20)


class DmCorridor(dm_env.Environment):
  """dm_env form: continuous moves in [-2, 2] by default, dict observation.

  The specs can be replaced through the constructor so tests can offer the
  adapter ones it must refuse.
  """

  def __init__(self, length=5, time_limit=20, start=None, seed=0,
               action_spec=None, observation_spec=None, reward_spec=None):
    self.length = length
    self.time_limit = time_limit
    self.start = start
    self.seed = seed
    self._rng = np.random.default_rng(seed)
    self._action_spec = specs.BoundedArray(
        (1,), np.float32, -2.0, 2.0, "move") if action_spec is None else (
            action_spec)
    self._observation_spec = {
        "position": specs.Array((), np.float64, "position"),
        "steps_left": specs.Array((1,), np.int32, "steps_left"),
    } if observation_spec is None else observation_spec
    self._reward_spec = reward_spec
    self.position = 0.0
    self.steps = 0
    self.actions = []

  def _observe(self):
    return {"position": np.float64(self.position),
            "steps_left": np.array([self.time_limit - self.steps], np.int32)}

  def reset(self):
    self.steps = 0
    self.position = (float(self._rng.integers(0, self.length - 1))
                     if self.start is None else float(self.start))
    return dm_env.restart(self._observe())

  def step(self, action):
    self.actions.append(action)
    self.steps += 1
    move = float(np.asarray(action).reshape(-1)[0])
    self.position = min(max(self.position + move, 0.0), self.length - 1.0)
    if self.position >= self.length - 1:
      return dm_env.termination(1.0, self._observe())
    if self.steps >= self.time_limit:
      return dm_env.truncation(0.0, self._observe())
    return dm_env.transition(0.0, self._observe())

  def observation_spec(self):
    return self._observation_spec

  def action_spec(self):
    return self._action_spec

  def reward_spec(self):
    if self._reward_spec is None:
      return super().reward_spec()
    return self._reward_spec


def make_corridor(length=5, time_limit=20, start=None, seed=0, **spec_kwargs):
  """What `dm_env:tests.envs.user_envs:make_corridor` calls."""
  return DmCorridor(length, time_limit, start, seed, **spec_kwargs)


def make_unseeded(length=5):
  """A callable without a `seed` parameter: the adapter cannot seed it."""
  return DmCorridor(length, start=0)


def make_not_an_env():
  return {"length": 5}
