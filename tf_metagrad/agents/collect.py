"""Batches for `Learner.step` from an environment, without Reverb.

`TrajectoryCollector` acts in a `tf_metagrad.envs.BatchedEnv` with an agent
network's sampled actions (head 0, see `acting.Policy`) and returns each
unroll as a time-major `types.Trajectory`, the layout the trainer's actors
write to Reverb (`tf_metagrad.system.reverb_actor`): episodes continue across
unrolls, a termination gives discount 0, a time-limit truncation is a
normal step into the final observation followed by a padding step (mask 0,
discount 0) into the next episode, and a recurrent network's state is
zeroed before each episode's first observation. It is the short path from
Python to a learner step; the trainer's actors (`tf_metagrad.system.reverb_actor`)
do the same through Reverb (`envs.batched.recorded_step` is what both
record of an environment step).
"""

from typing import List

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad import types
from tf_metagrad.agents import acting as actor_lib
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.envs import batched


class TrajectoryCollector:
  """Collects unrolls of `unroll_length` steps of every copy of `env`.

  Args:
    env: a `tf_metagrad.envs.BatchedEnv` (e.g. `envs.make_batched(...)`);
      the collector resets it and sets its `pad_truncations`.
    network: the agent network that acts (e.g. `learner.network`; its
      variables are read at every step, so acting follows the learner).
    unroll_length: T, the steps of each trajectory.
    seed: seeds the environment reset and the action sampling.

  Attributes:
    env_steps: environment steps taken so far, all copies together (the
      frames a trainer counts).
    episode_returns: undiscounted returns of the episodes that ended so
      far, in the order they ended.
  """

  def __init__(self, env: batched.BatchedEnv,
               network: networks_lib.AgentNetwork, unroll_length: int,
               seed: int = 0) -> None:
    if isinstance(unroll_length, bool) or int(unroll_length) < 1:
      raise ValueError(f"unroll_length must be an int >= 1, got "
                       f"{unroll_length!r}.")
    self._env = env
    env.pad_truncations = True
    self._unroll = int(unroll_length)
    self._seed = int(seed)
    self._discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
    policy = actor_lib.Policy(network)
    obs_spec = env.observation_spec
    state_spec = tf.nest.map_structure(
        lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype),
        policy.state_spec())
    # One trace for every call: the batch size and the seed are inputs.
    self._sample = tf.function(
        policy.sample_step,
        input_signature=[
            tf.TensorSpec([None] + obs_spec.shape.as_list(), obs_spec.dtype),
            state_spec, tf.TensorSpec([2], tf.int64)],
        autograph=False)
    self._observation = env.reset(seed=self._seed)
    self._state = tuple(np.asarray(s)
                        for s in policy.initial_state(env.num_envs))
    self._steps_per_copy = 0
    self.env_steps = 0
    self.episode_returns: List[float] = []

  def collect(self) -> types.Trajectory:
    """The next unroll: observation `[T+1, B, ...]`, the rest `[T, B]`."""
    t = self._unroll
    observations = [self._observation]
    actions, rewards, discounts, log_probs, masks = [], [], [], [], []
    start_state = self._state
    state = start_state
    for step in range(t):
      seed = tf.constant([self._seed, self._steps_per_copy + step],
                         tf.int64)
      action, log_prob, state = self._sample(observations[-1], state, seed)
      action = action.numpy()
      result = self._env.step(action)
      # Truncated steps are not terminal; the padding step after one is
      # where the episode ends (see the module docstring).
      action, log_prob, discount, mask = batched.recorded_step(
          result, action, log_prob.numpy())
      actions.append(action.astype(np.int32 if self._discrete
                                   else np.float32))
      log_probs.append(log_prob)
      rewards.append(np.asarray(result.reward, np.float32))
      discounts.append(discount)
      masks.append(mask)
      starts = discount == 0
      observations.append(result.observation)
      self.episode_returns.extend(float(r) for r in result.episode_return[
          result.terminated | result.truncated])
      # The next episode starts from the zero state, as the learner assumes.
      state = tuple(np.where(starts[:, None], 0, np.asarray(s)).astype(
          np.asarray(s).dtype) for s in state)
    self._observation = observations[-1]
    self._state = state
    self._steps_per_copy += t
    self.env_steps += t * self._env.num_envs
    return types.Trajectory(
        observation=tf.constant(np.stack(observations)),
        action=tf.constant(np.stack(actions)),
        reward=tf.constant(np.stack(rewards)),
        discount=tf.constant(np.stack(discounts)),
        behaviour_log_prob=tf.constant(np.stack(log_probs)),
        core_state=tuple(tf.constant(s) for s in start_state),
        mask=tf.constant(np.stack(masks)))
