"""K copies of an environment stepped together, with auto-reset.

`BatchedEnv.step` never returns a terminal observation: where copy i's
episode terminated, `observation[i]` is already the first observation of its
next episode, and the ended episode is summarised in `episode_return[i]` /
`episode_length[i]`. This is the layout an actor writes into a `Trajectory`
(see `tf_metagrad/types.py`): the discount at that step is 0 and x_{t+1}
starts the new episode.

A time limit is not a terminal state: the value of the observation it cut
the episode at is what the last step must bootstrap from (Pardo et al. 2018,
"Time limits in reinforcement learning"). With `pad_truncations` set (the
actors set it), a truncated copy therefore returns that final observation
x_final and is held: its next `step` ignores its action, takes no
environment step, and returns the first observation of the next episode
with reward 0 and `padding` True (the actors write it as a padding step,
see `types.Trajectory.mask`). Without it (the default), a truncation resets
at once like a termination, and x_final is lost.
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
    padding: bool `[K]`, the copy was held after a truncation (only with
      `pad_truncations`): it took no environment step, and `observation` is
      its next episode's first one (reward 0, not terminated or truncated).
  """

  observation: np.ndarray
  reward: np.ndarray
  terminated: np.ndarray
  truncated: np.ndarray
  episode_return: np.ndarray
  episode_length: np.ndarray
  padding: np.ndarray


def recorded_step(step: BatchStep, action: np.ndarray, log_prob: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """What a trajectory records for `step`, taken with the sampled `action`
  `[K, ...]` of behaviour log-prob `log_prob` `[K]`: (action, log-prob,
  discount, mask). A padding step (`step.padding`) records action 0,
  log-prob 0, discount 0 and mask 0; a truncated step is not terminal
  (discount 1, see the module docstring); a terminated one has discount 0.
  """
  padding = step.padding
  action = np.where(padding.reshape((-1,) + (1,) * (action.ndim - 1)), 0,
                    action)
  log_prob = np.where(padding, 0, log_prob)
  discount = (~(step.terminated | padding)).astype(np.float32)
  return action, log_prob, discount, (~padding).astype(np.float32)


class EpisodeTracker:
  """Accumulates per-copy returns and lengths and reports ended episodes."""

  def __init__(self, num_envs: int) -> None:
    self._returns = np.zeros(num_envs, np.float64)
    self._lengths = np.zeros(num_envs, np.int64)

  def clear(self) -> None:
    self._returns[:] = 0.0
    self._lengths[:] = 0

  def update(self, reward: np.ndarray, done: np.ndarray,
             padding: Optional[np.ndarray] = None
             ) -> Tuple[np.ndarray, np.ndarray]:
    """Adds one step (none where `padding`, a held copy); returns
    (episode_return, episode_length) of BatchStep."""
    self._returns += reward
    self._lengths += 1 if padding is None else ~padding
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
    pad_truncations: hold truncated copies for one padding step (see the
      module docstring); False by default, set it before stepping.
  """

  num_envs: int
  observation_spec: tf.TensorSpec
  action_space: gymnasium.spaces.Space
  pad_truncations: bool = False

  def _held_after(self, terminated: np.ndarray,
                  truncated: np.ndarray) -> np.ndarray:
    """The copies the next `step` holds: truncated, not terminated (a step
    that is both ends in a terminal state), and only with padding on."""
    if not self.pad_truncations:
      return np.zeros_like(truncated)
    return truncated & ~terminated

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
    self._held = np.zeros(self.num_envs, bool)

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
    self._held[:] = False
    return np.stack(observations)

  def step(self, actions: npt.ArrayLike) -> BatchStep:
    if not self._started:
      raise RuntimeError("BatchedEnv.step called before reset().")
    actions = np.asarray(actions)
    if actions.shape[:1] != (self.num_envs,):
      raise ValueError(f"actions must have leading dimension num_envs="
                       f"{self.num_envs}, got shape {actions.shape}.")
    observations, rewards, terminated, truncated = [], [], [], []
    padding = self._held.copy()
    for env, action, held in zip(self._envs, actions, padding):
      if held:
        obs, reward, term, trunc = env.reset()[0], 0.0, False, False
      else:
        obs, reward, term, trunc, _ = env.step(action)
        if term or (trunc and not self.pad_truncations):
          obs, _ = env.reset()
      observations.append(obs)
      rewards.append(reward)
      terminated.append(term)
      truncated.append(trunc)
    reward = np.asarray(rewards, np.float32)
    terminated = np.asarray(terminated, bool)
    truncated = np.asarray(truncated, bool)
    self._held = self._held_after(terminated, truncated)
    episode_return, episode_length = self._tracker.update(
        reward, terminated | truncated, padding)
    return BatchStep(np.stack(observations), reward, terminated, truncated,
                     episode_return, episode_length, padding)

  def close(self) -> None:
    for env in self._envs:
      env.close()
