"""Machinery shared by the vectorised toy domains (Catch, RandomWalk, ...).

Each domain is written once as a `ToyCore`: numpy state arrays with a leading
copy dimension K and one `CounterRandom` stream per copy. The single
Gymnasium environment is that core with K = 1 and the batched environment is
the same core with K copies, so both follow identical arithmetic and the
batched copies equal independent single copies step for step.
"""

import abc
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import gymnasium
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from tf_metagrad.envs import batched
from tf_metagrad.envs import seeding


class ToyCore(abc.ABC):
  """K copies of a discrete-action toy domain as numpy arrays.

  Subclasses set `observation_shape` and `num_actions` in `__init__` and
  implement `_reset`, `_step` and `observe`.
  """

  observation_shape: Tuple[int, ...]
  num_actions: int

  def __init__(self, num_envs: int) -> None:
    self.num_envs = batched.check_num_envs(num_envs)
    self.rng = seeding.CounterRandom(np.zeros(self.num_envs, np.uint64))
    # Environment steps taken since the last seeding, per copy; drives the
    # non-stationary rewards (a lifetime clock, not reset between episodes).
    self.total_steps = np.zeros(self.num_envs, np.int64)

  def seed(self, seeds: Sequence[int]) -> None:
    """Restarts copy i's random stream and lifetime clock from `seeds[i]`."""
    keys = [seeding.stream_key(s) for s in seeds]
    if len(keys) != self.num_envs:
      raise ValueError(f"seeds must have {self.num_envs} entries, got "
                       f"{len(keys)}.")
    self.rng = seeding.CounterRandom(keys)
    self.total_steps[:] = 0

  def reset(self, mask: np.ndarray) -> None:
    """Starts a new episode in the copies where bool `mask [K]` is True."""
    self._reset(np.asarray(mask, bool))

  def step(self, actions: npt.ArrayLike,
           active: Optional[np.ndarray] = None
           ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Advances every copy (or the `active` ones) one step.

    Args:
      actions: int `[K]` in [0, num_actions).
      active: optional bool `[K]`; copies where it is False keep their
        state, random stream and lifetime clock, and report reward 0, not
        terminated, not truncated (a held copy, see `batched`).

    Returns:
      (reward float32 `[K]`, terminated bool `[K]`, truncated bool `[K]`).

    Raises:
      ValueError: if `actions` has the wrong shape or an out-of-range entry.
    """
    actions = self.check_actions(actions)
    if active is None or active.all():
      reward, terminated, truncated = self._step(actions)
      self.total_steps += 1
      return reward.astype(np.float32), terminated, truncated
    # The domains step all K copies at once, so the inactive ones are
    # stepped too and then put back: every per-copy array (leading
    # dimension K), of the core and of its random streams, is restored.
    saved = [(owner, name, value.copy())
             for owner in (self, self.rng)
             for name, value in vars(owner).items()
             if isinstance(value, np.ndarray)
             and value.shape[:1] == (self.num_envs,)]
    reward, terminated, truncated = self._step(actions)
    held = ~active
    for owner, name, value in saved:
      getattr(owner, name)[held] = value[held]
    self.total_steps += active
    return (np.where(active, reward, 0).astype(np.float32),
            terminated & active, truncated & active)

  def check_actions(self, actions: npt.ArrayLike) -> np.ndarray:
    actions = np.asarray(actions)
    if actions.shape != (self.num_envs,):
      raise ValueError(f"actions must have shape [{self.num_envs}], got "
                       f"{actions.shape}.")
    if not np.issubdtype(actions.dtype, np.integer):
      if not np.all(np.equal(np.mod(actions, 1), 0)):
        raise ValueError(f"actions must be integers in [0, "
                         f"{self.num_actions}), got {actions}.")
      actions = actions.astype(np.int64)
    if np.any((actions < 0) | (actions >= self.num_actions)):
      raise ValueError(f"actions must lie in [0, {self.num_actions}), got "
                       f"{actions}.")
    return actions.astype(np.int64)

  def info(self) -> Dict[str, np.ndarray]:
    """Per-copy diagnostics `[K, ...]` reported in a single env's info."""
    return {"total_steps": self.total_steps.copy()}

  @abc.abstractmethod
  def _reset(self, mask: np.ndarray) -> None:
    """Draws new episode starts where `mask`; other copies are untouched."""

  @abc.abstractmethod
  def _step(self, actions: np.ndarray):
    """One transition with `self.total_steps` still counting earlier steps."""

  @abc.abstractmethod
  def observe(self) -> np.ndarray:
    """float32 observations `[K, *observation_shape]`."""


class ToyEnv(gymnasium.Env):
  """One copy of a `ToyCore` as a Gymnasium environment.

  Attributes:
    core: the underlying K = 1 core (exposes the domain's state).
    observation_spec: `tf.TensorSpec` float32 of one observation.
    observation_space: matching `gymnasium.spaces.Box` in [0, 1].
    action_space: `gymnasium.spaces.Discrete(core.num_actions)`.
  """

  metadata = {"render_modes": []}
  core_class: type = ToyCore

  def __init__(self, seed: Optional[int] = None, **core_kwargs: Any) -> None:
    """Builds the environment.

    Args:
      seed: seed used by the first `reset()` without a seed; None draws one
        from OS entropy.
      **core_kwargs: the domain's options (see its core class).
    """
    self.core = self.core_class(num_envs=1, **core_kwargs)
    self._initial_seed = seeding.fresh_seed() if seed is None else (
        seeding.check_seed(seed))
    self._seeded = False
    self._needs_reset = True
    shape = self.core.observation_shape
    self.observation_spec = tf.TensorSpec(shape, tf.float32, "observation")
    self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape, np.float32)
    self.action_space = gymnasium.spaces.Discrete(self.core.num_actions)

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
            ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Starts an episode; a `seed` also restarts the lifetime step clock."""
    del options  # The toy domains take no reset options.
    if seed is not None or not self._seeded:
      seed = self._initial_seed if seed is None else seed
      super().reset(seed=seed)
      self.core.seed([seed])
      self._seeded = True
    self.core.reset(np.ones(1, bool))
    self._needs_reset = False
    return self.core.observe()[0], self._info()

  def step(self, action: Union[int, np.integer]
           ) -> Tuple[np.ndarray, float, bool, bool, Dict[str, Any]]:
    if self._needs_reset:
      raise RuntimeError(
          f"{type(self).__name__}.step called before reset() or after the "
          "episode ended; call reset() first.")
    reward, terminated, truncated = self.core.step(np.asarray([action]))
    self._needs_reset = bool(terminated[0] or truncated[0])
    return (self.core.observe()[0], float(reward[0]), bool(terminated[0]),
            bool(truncated[0]), self._info())

  def _info(self) -> Dict[str, Any]:
    return {k: v[0] for k, v in self.core.info().items()}


class ToyBatchedEnv(batched.BatchedEnv):
  """K copies of a toy domain, fully vectorised over K.

  Attributes:
    core: the underlying K-copy core.
  """

  def __init__(self, core: ToyCore, seed: Optional[int] = None) -> None:
    self.core = core
    self.num_envs = core.num_envs
    self._seed = seeding.fresh_seed() if seed is None else (
        seeding.check_seed(seed))
    self.observation_spec = tf.TensorSpec(core.observation_shape, tf.float32,
                                          "observation")
    self.action_space = gymnasium.spaces.Discrete(core.num_actions)
    self._tracker = batched.EpisodeTracker(self.num_envs)
    self._seeded = False
    self._held = np.zeros(self.num_envs, bool)

  def reset(self, seed: Optional[int] = None) -> np.ndarray:
    if seed is not None or not self._seeded:
      seed = self._seed if seed is None else seed
      self.core.seed(
          [seeding.derive_seed(seed, i) for i in range(self.num_envs)])
      self._seeded = True
    self.core.reset(np.ones(self.num_envs, bool))
    self._tracker.clear()
    self._held[:] = False
    return self.core.observe()

  def step(self, actions: npt.ArrayLike) -> batched.BatchStep:
    if not self._seeded:
      raise RuntimeError("BatchedEnv.step called before reset().")
    padding = self._held
    reward, terminated, truncated = self.core.step(
        actions, None if not padding.any() else ~padding)
    done = terminated | truncated
    episode_return, episode_length = self._tracker.update(reward, done,
                                                          padding)
    self._held = self._held_after(terminated, truncated)
    starts = padding | (done & ~self._held)
    if starts.any():
      self.core.reset(starts)
    return batched.BatchStep(self.core.observe(), reward, terminated,
                             truncated, episode_return, episode_length,
                             padding)
