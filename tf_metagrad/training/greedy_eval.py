"""Greedy evaluation of a run's policy: at the end of training and,
with `--eval_every_env_steps`, periodically in a background thread so that
the learner only pays for a snapshot of the weights.

Both run their one-observation policy calls on the CPU
(`system.reverb_actor.POLICY_DEVICE`), on a network of their own whose variables
live there: on a GPU host each call would otherwise wait behind the
learner's steps on GPU:0 and read the weights across the bus.
"""

import threading
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import acting as actor_lib
from tf_metagrad.agents import base as agents_base
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import reverb_actor as system_actor
from tf_metagrad.system import snapshots

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
  observation_spec, action_space = runs.env_specs(spec)
  with tf.device(system_actor.POLICY_DEVICE):
    return networks_lib.make_network(runs.agent_config(spec),
                                     observation_spec, action_space)


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


class PeriodicEvaluator(snapshots.SnapshotWorker):
  """Greedy evaluations of weight snapshots, in a background thread.

  The learner only pays for the snapshot (`system.snapshots`); the episodes
  run here, on a network of this thread's own. A threshold crossed while an
  evaluation is still running is skipped (and counted in `skipped`) rather
  than queued, so evaluations never pile up behind a slow environment.

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
    super().__init__(variables, name="periodic-eval",
                     what="periodic evaluation", finish_pending=False)
    self._spec = spec
    self._every = every_env_steps
    self._episodes = episodes
    self._next = (start_env_steps // every_env_steps + 1) * every_env_steps
    self._network = cpu_network(spec)
    self._lock = threading.Lock()
    self._results: List[Tuple[int, int, float]] = []
    self.skipped = 0

  def offer(self, env_steps: int, learner_steps: int) -> None:
    """Snapshots the weights if `env_steps` crossed the next threshold."""
    self.raise_if_failed()
    if env_steps < self._next:
      return
    self._next = (env_steps // self._every + 1) * self._every
    if not self.hand_over((env_steps, learner_steps)):
      self.skipped += 1

  def results(self) -> List[Tuple[int, int, float]]:
    """(env_steps, learner_steps, mean return) of the evaluations finished
    since the last call."""
    with self._lock:
      done, self._results = self._results, []
    return done

  def work(self, tag: Any, tensors: List[tf.Tensor]) -> None:
    env_steps, learner_steps = tag
    with tf.device(system_actor.POLICY_DEVICE):
      for var, value in zip(self._network.variables, tensors):
        var.assign(value)
    returns = evaluate(None, self._spec, self._episodes,
                       seed=self._spec.seed + EVAL_SEED_OFFSET,
                       network=self._network)
    with self._lock:
      self._results.append((env_steps, learner_steps,
                            float(np.mean(returns))))
