"""Any registered Gymnasium id (`gym:<id>`) in the agents' conventions.

`gym:<module>:<id>` first imports `<module>`, which is expected to register
`<id>` (Gymnasium's own `gymnasium.make("<module>:<id>")` convention), so an
environment defined in the user's code needs no change to this library.

Observations: a float `Box` is cast to float32, an integer `Box` keeps its
dtype (e.g. uint8 images), a `Discrete(n)` observation becomes a float32
one-hot `[n]`. Actions: `Discrete` passes through; a bounded `Box` is
exposed as `Box(-1, 1)` and mapped affinely onto its bounds.

Rendering is Gymnasium's: `render_mode="rgb_array"` (passed on to
`gymnasium.make`) makes `render()` return `[H, W, 3]` uint8 frames, for
the ids whose `metadata["render_modes"]` list it (the classic-control and
Box2D ones draw with pygame: `pip install "gymnasium[classic-control]"`).
"""

import difflib
import os
from typing import Any, Dict, Optional, Tuple

import gymnasium
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from tf_metagrad.envs import seeding
from tf_metagrad.envs import spaces
from tf_metagrad.envs import user_modules


def registered_id(env_id: str) -> str:
  """The registered id named by `env_id` ("<id>" or "<module>:<id>").

  Args:
    env_id: as for `GymEnv`.

  Returns:
    `<id>`, after importing `<module>` if one is named.

  Raises:
    ValueError: if the module cannot be imported or, after the import, the
      id is not registered.
  """
  module, plain_id = user_modules.split_module(env_id)
  if module is None:
    if env_id not in gymnasium.registry:
      raise ValueError(
          f"Unknown Gymnasium id {env_id!r}; if a module of yours registers "
          f"it, name that module: gym:<module>:{env_id} (imported first, as "
          f"gymnasium.make('<module>:{env_id}') does); registered ids: "
          f"{', '.join(sorted(gymnasium.registry))}.")
    return env_id
  if not plain_id:
    raise ValueError(f"{env_id!r} names no id after the module; use "
                     "<module>:<id>, e.g. my_pkg.envs:Corridor-v0.")
  user_modules.import_module(module, f"Gymnasium id {plain_id!r}")
  if plain_id not in gymnasium.registry:
    close = difflib.get_close_matches(plain_id, list(gymnasium.registry), 3)
    hint = f" (close: {', '.join(close)})" if close else ""
    raise ValueError(
        f"Module {module!r} was imported but Gymnasium id {plain_id!r} is "
        f"still not registered{hint}; the module must call "
        f"gymnasium.register(id={plain_id!r}, ...) when imported.")
  return plain_id


class GymEnv(gymnasium.Wrapper):
  """Wraps `gymnasium.make(env_id, **kwargs)`.

  Attributes:
    observation_spec: `tf.TensorSpec` of one converted observation.
    observation_space: the matching Box.
    action_space: `Discrete` or `Box(-1, 1)`.
  """

  def __init__(self, env_id: str, seed: Optional[int] = None,
               **kwargs: Any) -> None:
    """Builds the environment.

    Args:
      env_id: a registered Gymnasium id, e.g. "CartPole-v1", or
        "<module>:<id>" to import the module that registers it first.
      seed: seed of the first `reset()`; None draws one from OS entropy.
      **kwargs: passed to `gymnasium.make` (e.g. `render_mode`).

    Raises:
      ValueError: if the module cannot be imported or the id is not
        registered.
      TypeError: if its spaces are not Box / Discrete, or a Box action space
        is unbounded.
    """
    if kwargs.get("render_mode") == "rgb_array":
      # Off-screen frames need no window; without a display SDL (under
      # pygame) would print an "error:" line to stderr, and plain pygame
      # greets on stdout, which holds a program's result.
      os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
      os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    super().__init__(gymnasium.make(registered_id(env_id), **kwargs))
    self._initial_seed = (seeding.fresh_seed() if seed is None else
                          seeding.check_seed(seed))
    self._seeded = False
    obs_space = self.env.observation_space
    if isinstance(obs_space, gymnasium.spaces.Discrete):
      self._one_hot = int(obs_space.n)
      shape, dtype = (self._one_hot,), np.float32
      self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape, dtype)
    elif isinstance(obs_space, gymnasium.spaces.Box):
      self._one_hot = 0
      shape = obs_space.shape
      dtype = (np.float32 if np.issubdtype(obs_space.dtype, np.floating) else
               obs_space.dtype)
      self.observation_space = gymnasium.spaces.Box(
          obs_space.low.astype(dtype), obs_space.high.astype(dtype), shape,
          dtype)
    else:
      raise TypeError(f"gym:{env_id} has observation space {obs_space}; only "
                      "Box and Discrete are supported.")
    self._dtype = np.dtype(dtype)
    self.observation_spec = tf.TensorSpec(shape, tf.as_dtype(self._dtype),
                                          "observation")
    act_space = self.env.action_space
    if isinstance(act_space, gymnasium.spaces.Discrete):
      self._bounds = None
      self.action_space = act_space
    elif isinstance(act_space, gymnasium.spaces.Box):
      if not (np.all(np.isfinite(act_space.low)) and
              np.all(np.isfinite(act_space.high))):
        raise TypeError(f"gym:{env_id} has an unbounded action space "
                        f"{act_space}; it cannot be mapped from [-1, 1].")
      self._bounds = (act_space.low.astype(np.float64),
                      act_space.high.astype(np.float64))
      self.action_space = spaces.unit_box(act_space.shape)
    else:
      raise TypeError(f"gym:{env_id} has action space {act_space}; only "
                      "Discrete and Box are supported.")

  def _convert(self, observation) -> np.ndarray:
    if self._one_hot:
      one_hot = np.zeros(self._one_hot, np.float32)
      one_hot[int(observation)] = 1.0
      return one_hot
    return np.asarray(observation, self._dtype)

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
            ) -> Tuple[np.ndarray, Dict[str, Any]]:
    if seed is None and not self._seeded:
      seed = self._initial_seed
    self._seeded = True
    observation, info = self.env.reset(seed=seed, options=options)
    return self._convert(observation), info

  def step(self, action: npt.ArrayLike
           ) -> Tuple[np.ndarray, float, bool, bool, Dict[str, Any]]:
    if self._bounds is not None:
      action = spaces.rescale_action(action, *self._bounds).astype(
          self.env.action_space.dtype)
    observation, reward, terminated, truncated, info = self.env.step(action)
    return (self._convert(observation), float(reward), bool(terminated),
            bool(truncated), info)
