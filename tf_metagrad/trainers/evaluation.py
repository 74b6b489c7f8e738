"""Greedy evaluation of a run's policy: at the end of training and,
with `--eval_every_env_steps`, periodically in a background thread so that
the learner only pays for a snapshot of the weights.

Both run their one-observation policy calls on the CPU
(`system.actor.POLICY_DEVICE`), on a network of their own whose variables
live there: on a GPU host each call would otherwise wait behind the
learner's steps on GPU:0 and read the weights across the bus.
"""

import threading
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import actor as actor_lib
from tf_metagrad.agents import base as agents_base
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import actor as system_actor

# Greedy evaluations (final and periodic) share their seeds, so their
# returns are comparable across the run.
EVAL_SEED_OFFSET = 1_000_003


def evaluate(learner: Optional[agents_base.Learner], spec: runs.RunSpec,
             episodes: int, seed: int, max_steps: int = 100_000,
             network: Optional[networks_lib.AgentNetwork] = None
             ) -> List[float]:
  """Raw returns of `episodes` greedy episodes (one env, fresh seed) of
  `network` (default: a copy of the learner's, on the CPU)."""
  with tf.device(system_actor.POLICY_DEVICE):
    if network is None:
      network = cpu_network(spec)
      for var, value in zip(network.variables, learner.network.variables):
        var.assign(value)
    return _greedy_returns(network, spec, episodes, seed, max_steps)


def cpu_network(spec: runs.RunSpec) -> networks_lib.AgentNetwork:
  """A fresh network of the run, its variables on `POLICY_DEVICE`."""
  env = runs.make_env(spec)
  try:
    with tf.device(system_actor.POLICY_DEVICE):
      return networks_lib.make_network(runs.agent_config(spec),
                                       env.observation_spec, env.action_space)
  finally:
    env.close()


def _greedy_returns(network, spec, episodes, seed, max_steps):
  env = runs.make_env(spec, seed=seed)
  policy = actor_lib.Policy(network)
  obs_spec = env.observation_spec
  state_specs = tf.nest.map_structure(
      lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype),
      policy.state_spec())
  greedy = tf.function(policy.greedy_step, input_signature=[
      tf.TensorSpec([None] + obs_spec.shape.as_list(), obs_spec.dtype),
      state_specs], autograph=False)
  returns = []
  try:
    for episode in range(episodes):
      obs, _ = env.reset(seed=seed + episode)
      state = policy.initial_state(1)
      total, done, steps = 0.0, False, 0
      while not done and steps < max_steps:
        action, state = greedy(np.asarray(obs)[None], state)
        action = action[0].numpy()
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
        steps += 1
      returns.append(total)
  finally:
    env.close()
  return returns


class PeriodicEvaluator(threading.Thread):
  """Greedy evaluations of weight snapshots, in a background thread.

  The learner only pays for the snapshot (one `tf.function` call copying
  the variables, as the weights publisher does); the episodes run here, on
  a network of this thread's own. A threshold crossed while an evaluation
  is still running is skipped rather than queued, so evaluations never pile
  up behind a slow environment.

  Args:
    spec: the run.
    variables: the learner network's variables (snapshotted by `offer`).
    every_env_steps: evaluate each time the env-step count crosses a
      multiple of this.
    episodes: greedy episodes per evaluation.
    start_env_steps: the counter when the session started (a resumed
      session does not re-evaluate the multiples already passed).
  """

  def __init__(self, spec: runs.RunSpec, variables: Sequence[tf.Variable],
               every_env_steps: int, episodes: int,
               start_env_steps: int) -> None:
    super().__init__(name="periodic-eval", daemon=True)
    self._spec = spec
    self._every = every_env_steps
    self._episodes = episodes
    self._next = (start_env_steps // every_env_steps + 1) * every_env_steps
    self._snapshot = tf.function(lambda: [tf.identity(v) for v in variables],
                                 autograph=False)
    self._network = cpu_network(spec)
    self._cond = threading.Condition()
    self._pending = None
    self._busy = False
    self._closed = False
    self._results: List[Tuple[int, int, float]] = []
    self.skipped = 0
    self.error: Optional[BaseException] = None

  def offer(self, env_steps: int, learner_steps: int) -> None:
    """Snapshots the weights if `env_steps` crossed the next threshold."""
    if self.error is not None:
      raise RuntimeError("periodic evaluation failed") from self.error
    if env_steps < self._next:
      return
    self._next = (env_steps // self._every + 1) * self._every
    with self._cond:
      if self._busy:
        self.skipped += 1
        return
      self._busy = True
      self._pending = (env_steps, learner_steps, self._snapshot())
      self._cond.notify()

  def results(self) -> List[Tuple[int, int, float]]:
    """(env_steps, learner_steps, mean return) of the evaluations finished
    since the last call."""
    with self._cond:
      done, self._results = self._results, []
    return done

  def run(self) -> None:
    while True:
      with self._cond:
        while self._pending is None and not self._closed:
          self._cond.wait()
        if self._closed:
          return
        env_steps, learner_steps, tensors = self._pending
        self._pending = None
      try:
        with tf.device(system_actor.POLICY_DEVICE):
          for var, value in zip(self._network.variables, tensors):
            var.assign(value)
        returns = evaluate(None, self._spec, self._episodes,
                           seed=self._spec.seed + EVAL_SEED_OFFSET,
                           network=self._network)
      except BaseException as e:  # pylint: disable=broad-except
        self.error = e
        return
      with self._cond:
        self._results.append((env_steps, learner_steps,
                              float(np.mean(returns))))
        self._busy = False

  def close(self, timeout_s: float) -> bool:
    """Lets a running evaluation finish within `timeout_s`, abandons a
    pending one; returns False if the thread is still running (a daemon,
    it does not keep the process alive)."""
    with self._cond:
      self._closed = True
      self._cond.notify()
    self.join(timeout_s)
    return not self.is_alive()
