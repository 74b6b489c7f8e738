"""An actor: steps a batch of environments with the current policy and writes
each fixed-length unroll of the whole batch to the Reverb queue as one item.

The same class runs in a trainer thread, in a local actor process and on a
remote machine (`programs.actor`); it only needs the Reverb address, the
environment name and the network architecture (agent + config overrides).

Time limits bootstrap (Pardo et al. 2018, "Time limits in reinforcement
learning"), written the dm_env way: when a time limit truncates copy k at
step t, step t is a normal transition (discount 1, not terminal) whose next
observation is the final one, x_final; the environment then holds copy k
(`BatchedEnv.pad_truncations`), and step t+1 of copy k is a padding step
from x_final to the next episode's first observation: no environment step,
the sampled action replaced by 0, reward 0, discount 0, behaviour log-prob
0 and `mask` 0 (`types.Trajectory.mask`). The learner gives it zero
importance weight, so targets before it bootstrap from V(x_final), and
leaves it out of the losses. The policy still runs on x_final with the
other copies (one batched call), as the learner's unroll does, and its
sample there is discarded. A padding step counts as a frame in
`env_steps`: one per episode, small next to the time limits it marks
(1000 DM Control steps, 27k Atari agent steps). Terminations are written as
before: discount 0 into the next episode's first observation, no padding.

A recurrent policy's state is kept per environment copy, zeroed where an
episode starts (the steps written with discount 0: a termination or a
padding step), and each item carries the state before its first
observation as `core_state`, from which the learner re-runs the core.

Overlapping unrolls (STAC supplement Table 3, control: trajectory length 40,
overlap length 30): with `unroll_stride` S < T, the first item of an actor
holds T steps and every later one is written after S more steps and holds
the last T, so consecutive items share T - S steps (observations, actions,
rewards, discounts, masks, behaviour log-probs), and each item's
`core_state` is the state before its own first step. The episode
statistics columns are kept only on the S new steps (NaN and 0 on the
shared ones), so an episode's return reaches the learner's statistics once.
S == T is the unroll-by-unroll writing, item for item. `stats.env_steps`
counts the frames the environments stepped: T for the first item, S for
each later one.
"""

import threading
from typing import Callable, Dict, Optional

import gymnasium
import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import envs
from tf_metagrad import runs
from tf_metagrad.envs import batched
from tf_metagrad.agents import acting as actor_lib
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

# Where actors and evaluations run their policy. A policy call is a batch of
# a few observations: on a GPU it would queue behind the learner's steps and
# pay two host-device copies, for a network the CPU runs in milliseconds.
POLICY_DEVICE = "/CPU:0"


class ActorStats:
  """Counters an actor exposes (read by the trainer in thread mode)."""

  def __init__(self) -> None:
    self.unrolls = 0
    self.env_steps = 0
    self.weights_version = -1


class Actor:
  """Acts in `num_envs` copies of an environment and feeds the queue.

  Args:
    client: a `reverb.Client` of the run's server.
    env_name: `tf_metagrad.envs` name.
    network: a built agent network (this actor's private copy).
    num_envs: K environment copies stepped together.
    unroll_length: T of each written item.
    unroll_stride: S, the steps between consecutive items (1 <= S <= T;
      None: T, items do not overlap). See the module docstring.
    seed: seeds the environments and the action sampling.
    env_kwargs: passed to `envs.make_batched`.
    refresh_every: unrolls between weight refreshes from the server (each
      reads the weights' version and fetches them only if it changed).
    write_timeout_ms: each blocking Reverb call gives up after this long and
      re-checks `should_stop` (the queue blocks while the learner is busy).
  """

  def __init__(self, client: reverb.Client, env_name: str,
               network: networks_lib.AgentNetwork,
               num_envs: int, unroll_length: int, seed: int,
               env_kwargs: Optional[Dict] = None, refresh_every: int = 1,
               write_timeout_ms: int = 1000,
               unroll_stride: Optional[int] = None) -> None:
    if num_envs < 1:
      raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    stride = items.resolve_stride(unroll_stride, unroll_length)
    self._client = client
    self._env = envs.make_batched(env_name, num_envs, seed=seed,
                                  pad_truncations=True, **(env_kwargs or {}))
    self._network = network
    self._policy = actor_lib.Policy(network)
    obs_spec = self._env.observation_spec
    state_spec = tf.nest.map_structure(
        lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype),
        self._policy.state_spec())
    self._sample = tf.function(
        self._policy.sample_step,
        input_signature=[
            tf.TensorSpec([None] + obs_spec.shape.as_list(), obs_spec.dtype),
            state_spec, tf.TensorSpec([2], tf.int64)],
        autograph=False)
    self._num_envs = num_envs
    self._unroll = unroll_length
    self._stride = stride
    # The last item's buffers and per-step states, kept while items overlap.
    self._window = None
    self._seed = seed
    self._refresh_every = max(1, refresh_every)
    self._timeout_ms = write_timeout_ms
    self._discrete = isinstance(self._env.action_space,
                                gymnasium.spaces.Discrete)
    self.stats = ActorStats()
    self._observation = None
    self._state = ()

  @property
  def env(self) -> envs.BatchedEnv:
    return self._env

  def item_spec(self) -> Dict[str, tf.TensorSpec]:
    """The signature of the items this actor writes (`items.item_spec`)."""
    return items.item_spec(
        self._env.observation_spec, self._env.action_space, self._unroll,
        core_state_spec=self._network.core_state_spec())

  def _refresh(self, should_stop: Callable[[], bool],
               force: bool = False) -> bool:
    """Fetches the latest weights if their version differs from the one
    held; False if stopped first.

    The version is read first, alone (`weights.latest_version`): most
    refreshes of an actor that unrolls faster than the learner publishes
    then move 8 bytes instead of the whole network. "Differs", not
    "greater": a restarted learner publishes from its checkpoint's step,
    which may be below the version held (its first version can equal the
    held one only when it is that checkpoint's step, whose weights the old
    learner published under the same version). The version recorded is the
    one inside the fetched item, never the one read first, which may be
    ahead of the weights table (see `weights`). `force` fetches and assigns
    without comparing: after a lost server (`programs.actor`), the server
    may be another learner, whose versions say nothing about the old one's.
    """
    if not force:
      latest = weights_lib.latest_version(self._client, timeout_s=30.0,
                                          should_stop=should_stop)
      if latest is None:
        return False
      if latest == self.stats.weights_version:
        return True
    while True:
      fetched = weights_lib.fetch(self._client, timeout_s=30.0,
                                  should_stop=should_stop)
      if fetched is not None:
        break
      # Without a stop, None means that the server answers but has no
      # weights yet (a learner starting up): wait on.
      if should_stop():
        return False
    version, values = fetched
    if force or version != self.stats.weights_version:
      weights_lib.assign(self._network.variables, values)
      self.stats.weights_version = version
    return True

  def _collect(self):
    """The next item's T steps of all K copies, as time-major numpy buffers,
    and the state before its first step: T new steps, or with overlapping
    items (after the first) S new ones after the previous item's last
    T - S."""
    k, t = self._num_envs, self._unroll
    new = t if self._window is None else self._stride
    keep = t - new
    obs = np.empty((t + 1, k) + self._observation.shape[1:],
                   self._observation.dtype)
    rewards = np.empty((t, k), np.float32)
    discounts = np.empty((t, k), np.float32)
    log_probs = np.empty((t, k), np.float32)
    masks = np.empty((t, k), np.float32)
    # The shared steps' episodes were reported by the previous item.
    ep_returns = np.full((t, k), np.nan, np.float32)
    ep_lengths = np.zeros((t, k), np.int32)
    actions = None
    # states[i]: the state before step i of this item.
    states = []
    if keep:
      # Fresh arrays, not views: an item's buffers stay as written.
      last = self._window
      obs[:keep + 1] = last["obs"][new:]
      for name, buffer in (("rewards", rewards), ("discounts", discounts),
                           ("log_probs", log_probs), ("masks", masks)):
        buffer[:keep] = last[name][new:]
      actions = np.empty_like(last["actions"])
      actions[:keep] = last["actions"][new:]
      states = last["states"][new:]
    else:
      obs[0] = self._observation
    state = self._state
    for step in range(keep, t):
      states.append(state)
      seed = tf.constant(
          [self._seed, self.stats.env_steps + step - keep], tf.int64)
      action, log_prob, state = self._sample(obs[step], state, seed)
      action = action.numpy()
      if actions is None:
        actions = np.empty((t,) + action.shape,
                           np.int32 if self._discrete else np.float32)
      result = self._env.step(action)
      # A truncated step is not terminal (discount 1, x_final follows); the
      # padding step after it ends the episode (see the module docstring).
      (actions[step], log_probs[step], discounts[step],
       masks[step]) = batched.recorded_step(result, action, log_prob.numpy())
      rewards[step] = result.reward
      ep_returns[step] = result.episode_return
      ep_lengths[step] = result.episode_length
      obs[step + 1] = result.observation
      state = self._reset_where(state, discounts[step] == 0)
    self._observation = obs[-1]
    self._state = state
    self.stats.env_steps += new
    if self._stride < t:
      self._window = dict(obs=obs, actions=actions, rewards=rewards,
                          discounts=discounts, log_probs=log_probs,
                          masks=masks, states=states)
    return (obs, actions, rewards, discounts, log_probs, ep_returns,
            ep_lengths, masks), states[0]

  @staticmethod
  def _reset_where(state, new_episode: np.ndarray):
    """Zeroes the state of the copies whose next observation starts an
    episode (the learner resets at the same steps, see `_forward`)."""
    return tuple(np.where(new_episode[:, None], 0, np.asarray(s)).astype(
        np.asarray(s).dtype) for s in state)

  def run(self, should_stop: Callable[[], bool] = lambda: False,
          max_unrolls: Optional[int] = None) -> None:
    """Acts until `should_stop()` (or `max_unrolls` unrolls are written in
    all calls together).

    A later call continues the episodes under way (after a lost server,
    see `programs.actor`), with freshly fetched weights. The policy runs on
    `POLICY_DEVICE`.
    """
    # tf.device is thread-local: entered here, in the thread that acts.
    with tf.device(POLICY_DEVICE):
      self._run(should_stop, max_unrolls)

  def _run(self, should_stop, max_unrolls):
    if self._observation is None:
      self._observation = self._env.reset(seed=self._seed)
      self._state = tuple(
          np.asarray(s) for s in self._policy.initial_state(self._num_envs))
    if not self._refresh(should_stop, force=True):
      return
    # Not a `with` block: its exit flushes without a timeout, which blocks
    # forever on a full queue once the learner has stopped consuming.
    writer = self._client.trajectory_writer(num_keep_alive_refs=1)
    try:
      while not should_stop():
        if max_unrolls is not None and self.stats.unrolls >= max_unrolls:
          break
        buffers, start_state = self._collect()
        server_lib.append_item(
            writer, server_lib.TRAJECTORY_TABLE,
            items.numpy_item(*buffers, core_state=start_state))
        while True:
          try:
            writer.flush(timeout_ms=self._timeout_ms)
            break
          except reverb.errors.DeadlineExceededError:
            if should_stop():
              return
        self.stats.unrolls += 1
        if self.stats.unrolls % self._refresh_every == 0:
          if not self._refresh(should_stop):
            return
    finally:
      writer.close()

  def close(self) -> None:
    self._env.close()


def make_actor(client: reverb.Client, spec: runs.RunSpec, num_envs: int,
               unroll_length: int, seed: int, refresh_every: int = 1,
               unroll_stride: Optional[int] = None) -> Actor:
  """An `Actor` of the run `spec` (its environment and options, and a fresh
  network of its agent config); the other arguments are `Actor`'s.

  Its variables live where the caller's device scope puts them: an actor
  thread calls this under `POLICY_DEVICE` (`ActorThread`).
  """
  observation_spec, action_space = runs.env_specs(spec)
  network = networks_lib.make_network(runs.agent_config(spec),
                                      observation_spec, action_space)
  return Actor(client, spec.env, network, num_envs=num_envs,
               unroll_length=unroll_length, seed=seed,
               env_kwargs=dict(spec.env_kwargs), refresh_every=refresh_every,
               unroll_stride=unroll_stride)


class ActorThread(threading.Thread):
  """Runs an `Actor` in a daemon thread, recording a crash for restart.

  `make_actor` runs in the thread under `POLICY_DEVICE`, so the variables
  of a network it builds live there, not on the learner's GPU.
  """

  def __init__(self, make_actor: Callable[[], Actor],
               stop_event: threading.Event, name: str) -> None:
    super().__init__(name=name, daemon=True)
    self._make_actor = make_actor
    self._stop_event = stop_event
    self.actor: Optional[Actor] = None
    self.error: Optional[BaseException] = None

  def run(self) -> None:
    try:
      with tf.device(POLICY_DEVICE):
        self.actor = self._make_actor()
      self.actor.run(should_stop=self._stop_event.is_set)
    except BaseException as e:  # pylint: disable=broad-except
      self.error = e
    finally:
      if self.actor is not None:
        self.actor.close()

