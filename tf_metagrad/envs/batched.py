"""K copies of an environment stepped together, with auto-reset.

`BatchedEnv.step` never returns a terminal observation: where copy i's
episode ended, `observation[i]` is already the first observation of its next
episode, and the ended episode is summarised in `episode_return[i]` /
`episode_length[i]`. This is the layout an actor writes into a `Trajectory`
(see `tf_metagrad/types.py`): the discount at that step is 0 (terminated) or
the bootstrap is cut (truncated) and x_{t+1} starts the new episode.
"""

import abc
from typing import Callable, List, NamedTuple, Optional, Tuple, Union

import gymnasium
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from tf_metagrad.envs import seeding


class BatchStep(NamedTuple):
  """What `BatchedEnv.step` returns for K copies.

  Attributes:
    observation: `[K, ...]`; where an episode ended this step, the first
      observation of the next episode.
    reward: float32 `[K]` raw reward of this step.
    terminated: bool `[K]`, the episode reached a terminal state.
    truncated: bool `[K]`, the episode was cut by a time limit.
    episode_return: float32 `[K]` undiscounted return of the episode that
      ended this step; NaN where no episode ended.
    episode_length: int32 `[K]` number of steps of that episode; 0 where no
      episode ended.
  """

  observation: np.ndarray
  reward: np.ndarray
  terminated: np.ndarray
  truncated: np.ndarray
  episode_return: np.ndarray
  episode_length: np.ndarray


class EpisodeTracker:
  """Accumulates per-copy returns and lengths and reports ended episodes."""

  def __init__(self, num_envs: int) -> None:
    self._returns = np.zeros(num_envs, np.float64)
    self._lengths = np.zeros(num_envs, np.int64)

  def clear(self) -> None:
    self._returns[:] = 0.0
    self._lengths[:] = 0

  def update(self, reward: np.ndarray,
             done: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Adds one step; returns (episode_return, episode_length) of BatchStep."""
    self._returns += reward
    self._lengths += 1
    episode_return = np.where(done, self._returns, np.nan).astype(np.float32)
    episode_length = np.where(done, self._lengths, 0).astype(np.int32)
    self._returns[done] = 0.0
    self._lengths[done] = 0
    return episode_return, episode_length


def check_num_envs(num_envs: Union[int, np.integer]) -> int:
  if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
    raise TypeError(f"num_envs must be a positive int, got "
                    f"{type(num_envs).__name__} {num_envs!r}.")
  if num_envs < 1:
    raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
  return int(num_envs)


class BatchedEnv(abc.ABC):
  """Interface of K environment copies stepped as one.

  Attributes:
    num_envs: K.
    observation_spec: `tf.TensorSpec` of one copy's observation (no batch
      dimension).
    action_space: one copy's `gymnasium.spaces.Discrete` or `Box(-1, 1)`.
  """

  num_envs: int
  observation_spec: tf.TensorSpec
  action_space: gymnasium.spaces.Space

  @abc.abstractmethod
  def reset(self, seed: Optional[int] = None) -> np.ndarray:
    """Starts a new episode in every copy and returns observations `[K, ...]`.

    Args:
      seed: if given, copy i is re-seeded with `derive_seed(seed, i)`;
        otherwise each copy continues its own random stream.
    """

  @abc.abstractmethod
  def step(self, actions: npt.ArrayLike) -> BatchStep:
    """Steps every copy with `actions` (`[K]` ints or `[K, A]` floats)."""

  def close(self) -> None:
    """Releases emulator / simulator resources (no-op by default)."""


class LoopBatchedEnv(BatchedEnv):
  """K single environments stepped in a Python loop, with auto-reset.

  Used for Atari, DM Control and Gymnasium ids, whose step cost dwarfs the
  loop overhead.
  """

  def __init__(self, make_single: Callable[[int], gymnasium.Env],
               num_envs: int, seed: Optional[int] = None) -> None:
    """Builds the copies.

    Args:
      make_single: maps a seed to one environment exposing
        `observation_spec` and `action_space`.
      num_envs: K.
      seed: batch seed; copy i gets `derive_seed(seed, i)`. None draws one
        from OS entropy.
    """
    self.num_envs = check_num_envs(num_envs)
    self._seed = seeding.fresh_seed() if seed is None else seed
    self._envs: List[gymnasium.Env] = [
        make_single(seeding.derive_seed(self._seed, i))
        for i in range(self.num_envs)
    ]
    self.observation_spec = self._envs[0].observation_spec
    self.action_space = self._envs[0].action_space
    self._tracker = EpisodeTracker(self.num_envs)
    self._started = False

  @property
  def envs(self) -> List[gymnasium.Env]:
    return list(self._envs)

  def reset(self, seed: Optional[int] = None) -> np.ndarray:
    if seed is None and not self._started:
      seed = self._seed
    observations = []
    for i, env in enumerate(self._envs):
      copy_seed = None if seed is None else seeding.derive_seed(seed, i)
      observations.append(env.reset(seed=copy_seed)[0])
    self._tracker.clear()
    self._started = True
    return np.stack(observations)

  def step(self, actions: npt.ArrayLike) -> BatchStep:
    if not self._started:
      raise RuntimeError("BatchedEnv.step called before reset().")
    actions = np.asarray(actions)
    if actions.shape[:1] != (self.num_envs,):
      raise ValueError(f"actions must have leading dimension num_envs="
                       f"{self.num_envs}, got shape {actions.shape}.")
    observations, rewards, terminated, truncated = [], [], [], []
    for env, action in zip(self._envs, actions):
      obs, reward, term, trunc, _ = env.step(action)
      if term or trunc:
        obs, _ = env.reset()
      observations.append(obs)
      rewards.append(reward)
      terminated.append(term)
      truncated.append(trunc)
    reward = np.asarray(rewards, np.float32)
    terminated = np.asarray(terminated, bool)
    truncated = np.asarray(truncated, bool)
    episode_return, episode_length = self._tracker.update(
        reward, terminated | truncated)
    return BatchStep(np.stack(observations), reward, terminated, truncated,
                     episode_return, episode_length)

  def close(self) -> None:
    for env in self._envs:
      env.close()
