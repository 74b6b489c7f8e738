"""The training loop behind `trainers.train` (no flags here; see train.py).

One process runs the learner and, by default, the Reverb server and actor
threads:

  actors (threads | processes | remote) --unroll items--> Reverb queue
  Reverb queue --TrajectoryDataset--> learner (strategy) --weights--> Reverb

The learner counts environment steps as the frames it consumed (every item
in the queue is consumed exactly once), which makes the counter exact and
resumable. Checkpoints hold the learner (network, optimizer and
meta-optimizer state, metaparameters, learner step) and the env-step counter.

Each learner call runs `steps_per_call` steps in one `tf.function` (the TPU
training-loop pattern, see `Learner.steps_from_iterator`); both counters
advance in that graph, and the host keeps its own copy of them, so between
calls it reads nothing back unless it logs, writes summaries, checkpoints or
publishes weights. Actors live in `trainers.actor_pool`, reports in
`trainers.outputs`.
"""

import dataclasses
import gc
import os
import signal
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import actor as actor_lib
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib
from trainers import actor_pool
from trainers import outputs

# metrics.csv's writer, kept under its old name for callers of this module.
_CsvLog = outputs.CsvLog


@dataclasses.dataclass
class Options:
  """Everything `train.py`'s flags decide."""

  logdir: str
  total_env_steps: int
  unroll_length: int
  batch_size: int
  num_actors: int = 2
  num_actor_processes: int = 0
  envs_per_actor: int = 32
  reverb_port: Optional[int] = None
  queue_capacity: Optional[int] = None  # Items; see server.queue_capacity.
  weights_every: int = 1
  weights_min_interval_s: float = 0.1
  actor_refresh_every: int = 1
  data_timeout_s: float = 10.0
  max_data_wait_s: float = 600.0
  log_every_s: float = 5.0
  summary_every_s: float = 10.0
  checkpoint_every_s: float = 120.0
  eval_episodes: int = 20
  export: bool = True
  steps_per_call: int = 1  # Learner steps per tf.function call.


class StopFlag:
  """Set by SIGTERM/SIGINT; the loop checkpoints and exits cleanly."""

  def __init__(self):
    self.event = threading.Event()
    self.signal_name = None

  def install(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    self.event.set()

  def is_set(self):
    return self.event.is_set()


def item_unroll_length(spec: runs.RunSpec, unroll_length: int) -> int:
  """FRODO consumes M+1 consecutive unrolls per step (one item)."""
  if spec.agent == "frodo":
    return unroll_length * (runs.agent_config(spec).num_inner_steps + 1)
  return unroll_length




def evaluate(learner, spec: runs.RunSpec, episodes: int, seed: int,
             max_steps: int = 100_000) -> List[float]:
  """Raw returns of `episodes` greedy episodes (one env, fresh seed)."""
  env = runs.make_env(spec, seed=seed)
  policy = actor_lib.Policy(learner.network)
  obs_spec = env.observation_spec
  state_specs = tf.nest.map_structure(
      lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype),
      policy.state_spec())
  greedy = tf.function(policy.greedy_step, input_signature=[
      tf.TensorSpec([None] + obs_spec.shape.as_list(), obs_spec.dtype),
      state_specs])
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


def train(spec: runs.RunSpec, options: Options,
          strategy: Optional[tf.distribute.Strategy] = None,
          stop: Optional[StopFlag] = None, log=print) -> Dict[str, Any]:
  """Trains (or resumes) the run in `options.logdir`; returns a summary."""
  strategy = strategy or tf.distribute.get_strategy()
  stop = stop or StopFlag()
  if options.steps_per_call < 1:
    raise ValueError(
        f"steps_per_call must be >= 1, got {options.steps_per_call}.")
  os.makedirs(options.logdir, exist_ok=True)
  spec = runs.check_or_save_spec(options.logdir, spec)

  learner = runs.build_learner(spec, strategy=strategy)
  with strategy.scope():
    env_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                            name="env_steps")
  checkpoint = runs.make_checkpoint(learner, env_steps=env_steps)
  manager = runs.checkpoint_manager(options.logdir, checkpoint)
  runs.check_checkpoint_index(options.logdir, manager.latest_checkpoint)
  if manager.latest_checkpoint:
    runs.restore(checkpoint, manager.latest_checkpoint)
    log(f"resumed from {manager.latest_checkpoint}: "
        f"env_steps={int(env_steps.numpy())} "
        f"learner_steps={int(learner.learner_steps.numpy())}")

  env = runs.make_env(spec)
  obs_spec, action_space = env.observation_spec, env.action_space
  env.close()
  unroll = item_unroll_length(spec, options.unroll_length)
  item_spec = items.item_spec(obs_spec, action_space, unroll,
                              core_state_spec=learner.network.core_state_spec())
  variables = learner.network.variables
  server = server_lib.start_server(
      server_lib.make_tables(item_spec,
                             server_lib.weights_signature(variables),
                             server_lib.queue_capacity(
                                 options.batch_size, options.envs_per_actor,
                                 options.queue_capacity)),
      port=options.reverb_port)
  address = server_lib.local_address(server.port)
  client = reverb.Client(address)
  # Host copies of the two counters, re-read from the variables only after a
  # call that failed part-way (its completed steps are counted in the graph).
  counts = {"env": int(env_steps.numpy()),
            "learner": int(learner.learner_steps.numpy())}
  weights_lib.publish(client, variables, counts["learner"])
  log(f"reverb server on port {server.port} (actors: "
      f"--reverb_address=HOST:{server.port}); agent={spec.agent} "
      f"env={spec.env} unroll={unroll} batch={options.batch_size} "
      f"replicas={strategy.num_replicas_in_sync}")
  log(f"note: dm-reverb 0.14 listens on all interfaces (port {server.port}) "
      f"and cannot bind to 127.0.0.1 only; firewall the port if other "
      f"machines must not reach it")

  publisher = weights_lib.Publisher(
      client, variables, min_interval_s=options.weights_min_interval_s)
  publisher.start()
  pool = actor_pool.ActorPool(spec, options, address, unroll, stop.event, log)
  pool.start()
  dataset = dataset_lib.distributed_dataset(
      strategy, address, item_spec, options.batch_size,
      int(options.data_timeout_s * 1000))
  iterator = iter(dataset)

  frames_per_step = unroll * options.batch_size
  reporter = outputs.Reporter(options.logdir, strategy,
                              options.total_env_steps, counts["env"])
  status = "completed"

  def save():
    path = manager.save()
    log(f"saved checkpoint {path} env_steps={counts['env']} "
        f"learner_steps={counts['learner']}")

  def report():
    return reporter.row(counts["env"], counts["learner"], pool.restarts)

  # Everything built so far lives as long as the run; moving it out of the
  # collector's generations keeps full collections (up to 0.18 s each on
  # Catch, stalling every thread) short.
  gc.collect()
  gc.freeze()
  last_data = time.monotonic()
  try:
    while counts["env"] < options.total_env_steps:
      if stop.is_set():
        status = f"stopped by {stop.signal_name or 'request'}"
        break
      pool.supervise()
      # The last call stops at the run's length, as single steps would.
      num_steps = min(options.steps_per_call, -(
          -(options.total_env_steps - counts["env"]) // frames_per_step))
      try:
        metrics, extras = learner.steps_from_iterator(
            iterator, num_steps, env_steps=env_steps,
            frames_per_step=frames_per_step)
      except (StopIteration, tf.errors.OutOfRangeError,
              tf.errors.DeadlineExceededError):
        counts.update(env=int(env_steps.numpy()),
                      learner=int(learner.learner_steps.numpy()))
        waited = time.monotonic() - last_data
        if waited > options.max_data_wait_s:
          raise RuntimeError(
              f"No trajectories for {waited:.0f}s (max_data_wait_s="
              f"{options.max_data_wait_s}); are any actors running? "
              f"(num_actors={options.num_actors}, num_actor_processes="
              f"{options.num_actor_processes}; external actors connect "
              f"with --reverb_address=HOST:{server.port})") from None
        log(f"waiting for trajectories ({waited:.0f}s)")
        iterator = iter(dataset)
        continue
      last_data = time.monotonic()
      previous = counts["learner"]
      counts["env"] += num_steps * frames_per_step
      counts["learner"] += num_steps
      # Publish when the call crossed a multiple of weights_every.
      if counts["learner"] // options.weights_every > (
          previous // options.weights_every):
        publisher.offer(counts["learner"])
      reporter.add(metrics, extras)

      if reporter.due("summary", options.summary_every_s):
        reporter.write(report())
      if reporter.due("log", options.log_every_s):
        log(reporter.progress_line(report()))
      if reporter.due("checkpoint", options.checkpoint_every_s):
        save()
  finally:
    gc.unfreeze()
    pool.stop()
    publisher.close()
    save()
    row = report()
    reporter.write(row)
    server.stop()

  summary = {"status": status, "env_steps": counts["env"],
             "learner_steps": counts["learner"],
             "actor_restarts": pool.restarts,
             "episode_return": row.get("episode_return", float("nan"))}
  log(f"training {status}: env_steps={summary['env_steps']} "
      f"learner_steps={summary['learner_steps']}")
  if status != "completed":
    return summary
  if options.export:
    from export import export_policy  # pylint: disable=g-import-not-at-top
    path = os.path.join(options.logdir, "saved_model")
    export_policy.export(learner, spec, counts["env"], path)
    summary["saved_model"] = path
    log(f"exported policy to {path}")
  if options.eval_episodes > 0:
    returns = evaluate(learner, spec, options.eval_episodes,
                       seed=spec.seed + 1_000_003)
    summary["final_eval_mean_return"] = float(np.mean(returns))
    log(f"final_eval_mean_return={summary['final_eval_mean_return']:.4f} "
        f"(std {np.std(returns):.4f} over {len(returns)} greedy episodes)")
  return summary
