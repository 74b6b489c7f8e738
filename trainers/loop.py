"""The training loop behind `trainers.train` (no flags here; see train.py).

One process runs the learner and, by default, the Reverb server and actor
threads:

  actors (threads | processes | remote) --unroll items--> Reverb queue
  Reverb queue --TrajectoryDataset--> learner (strategy) --weights--> Reverb

The learner counts environment steps as the frames it consumed (every item
in the queue is consumed exactly once), which makes the counter exact and
resumable. Checkpoints hold the learner (network, optimizer and
meta-optimizer state, metaparameters, learner step) and the env-step counter.
"""

import csv
import dataclasses
import gc
import math
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import actor as actor_lib
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import actor as system_actor
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib


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


class _CsvLog:
  """metrics.csv: one row per report; resumed runs append.

  A row with keys the header lacks (e.g. the learner's losses after a
  session that ended before the first learner step) rewrites the file with
  the union of the columns, so no metric is locked out.
  """

  def __init__(self, path: str):
    self._path = path
    self._columns = None
    if os.path.exists(path) and os.path.getsize(path) > 0:
      with open(path, newline="") as f:
        self._columns = next(csv.reader(f), None)

  def write(self, row: Dict[str, float]):
    new = sorted(k for k in row if k not in (self._columns or ()) and
                 k not in ("env_steps", "learner_steps"))
    if self._columns is None:
      self._columns = ["env_steps", "learner_steps"] + new
      with open(self._path, "w", newline="") as f:
        csv.writer(f).writerow(self._columns)
    elif new:
      with open(self._path, newline="") as f:
        old_rows = list(csv.DictReader(f))
      self._columns = self._columns + new
      tmp = self._path + ".tmp"
      with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, self._columns, restval="")
        writer.writeheader()
        writer.writerows(old_rows)
      os.replace(tmp, self._path)
    with open(self._path, "a", newline="") as f:
      csv.writer(f).writerow([row.get(c, "") for c in self._columns])


class _ActorPool:
  """Actor threads and/or processes, restarted when they die."""

  def __init__(self, spec: runs.RunSpec, options: Options, address: str,
               unroll: int, stop: threading.Event, log):
    self._spec = spec
    self._options = options
    self._address = address
    self._unroll = unroll
    self._stop = stop
    self._log = log
    self.threads: List[Optional[system_actor.ActorThread]] = []
    self.processes: List[Optional[subprocess.Popen]] = []
    self.restarts = 0
    self._generation = 0
    self._failures: Dict[str, int] = {}

  def _failed(self, key: str, productive: bool, error) -> None:
    """Counts back-to-back failures of an actor that never wrote an unroll;
    a persistent error (bad config, broken env) ends the run instead of
    restarting forever."""
    self._failures[key] = 0 if productive else self._failures.get(key, 0) + 1
    if self._failures[key] >= 3:
      raise RuntimeError(
          f"{key} failed 3 times in a row before writing any data; last "
          f"error: {error}")

  def _thread(self, index: int) -> system_actor.ActorThread:
    spec, options = self._spec, self._options
    self._generation += 1
    seed = spec.seed * 1000 + 7 * index + 100_003 * self._generation

    def make():
      config = runs.agent_config(spec)
      env = runs.make_env(spec)
      try:
        network = networks_lib.make_network(config, env.observation_spec,
                                            env.action_space)
      finally:
        env.close()
      return system_actor.Actor(
          reverb.Client(self._address), spec.env, network,
          num_envs=options.envs_per_actor, unroll_length=self._unroll,
          seed=seed, env_kwargs=spec.env_kwargs,
          refresh_every=options.actor_refresh_every)

    thread = system_actor.ActorThread(make, self._stop, f"actor-{index}")
    thread.start()
    return thread

  def _process(self, index: int) -> subprocess.Popen:
    spec, options = self._spec, self._options
    self._generation += 1
    log_dir = os.path.join(options.logdir, "actor_logs")
    os.makedirs(log_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "trainers.actor",
           f"--reverb_address={self._address}", f"--agent={spec.agent}",
           f"--env={spec.env}", f"--num_envs={options.envs_per_actor}",
           f"--unroll_length={self._unroll}",
           f"--seed={spec.seed * 1000 + 7 * index + 100_003 * self._generation}",
           f"--refresh_every={options.actor_refresh_every}"]
    for name, value in spec.config_overrides.items():
      if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
      cmd.append(f"--config={name}={value}")
    for name, value in spec.env_kwargs.items():
      cmd.append(f"--env_kwargs={name}={value!r}")
    log_file = open(os.path.join(log_dir, f"actor_{index}.log"), "ab")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                            cwd=root, env=env)
    proc.started = time.monotonic()
    self._log(f"started actor process {index} pid={proc.pid}")
    return proc

  def start(self):
    self.threads = [self._thread(i) for i in range(self._options.num_actors)]
    self.processes = [self._process(i)
                      for i in range(self._options.num_actor_processes)]

  def supervise(self):
    """Restarts dead actors (never while stopping)."""
    if self._stop.is_set():
      return
    for i, thread in enumerate(self.threads):
      if not thread.is_alive():
        self._failed(f"actor thread {i}",
                     thread.actor is not None and thread.actor.stats.unrolls,
                     repr(thread.error))
        self._log(f"actor thread {i} died ({thread.error!r}); restarting")
        self.threads[i] = self._thread(i)
        self.restarts += 1
    for i, proc in enumerate(self.processes):
      if proc.poll() is not None:
        self._failed(f"actor process {i}",
                     time.monotonic() - proc.started > 30.0,
                     f"exit code {proc.returncode}, see "
                     f"{os.path.join(self._options.logdir, 'actor_logs')}")
        self._log(f"actor process {i} (pid {proc.pid}) exited with "
                  f"{proc.returncode}; restarting")
        self.processes[i] = self._process(i)
        self.restarts += 1

  def actor_env_steps(self) -> int:
    return sum(t.actor.stats.env_steps for t in self.threads
               if t.actor is not None)

  def stop(self, timeout_s: float = 30.0):
    self._stop.set()
    for proc in self.processes:
      if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + timeout_s
    for thread in self.threads:
      thread.join(max(0.0, deadline - time.monotonic()))
    for proc in self.processes:
      try:
        proc.wait(max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


def _scalar_metrics(metrics: Dict[str, tf.Tensor]) -> Dict[str, float]:
  return {k: float(v) for k, v in metrics.items()}


def _format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def train(spec: runs.RunSpec, options: Options,
          strategy: Optional[tf.distribute.Strategy] = None,
          stop: Optional[StopFlag] = None, log=print) -> Dict[str, Any]:
  """Trains (or resumes) the run in `options.logdir`; returns a summary."""
  strategy = strategy or tf.distribute.get_strategy()
  stop = stop or StopFlag()
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
  weights_lib.publish(client, variables, int(learner.learner_steps.numpy()))
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
  pool = _ActorPool(spec, options, address, unroll, stop.event, log)
  pool.start()
  dataset = dataset_lib.distributed_dataset(
      strategy, address, item_spec, options.batch_size,
      int(options.data_timeout_s * 1000))
  iterator = iter(dataset)

  writer = tf.summary.create_file_writer(options.logdir)
  csv_log = _CsvLog(os.path.join(options.logdir, "metrics.csv"))
  frames_per_step = unroll * options.batch_size
  recent_returns: List[float] = []
  episodes = 0
  start_time = time.monotonic()
  start_steps = int(env_steps.numpy())
  last = {"log": start_time, "summary": start_time, "checkpoint": start_time}
  last_data = time.monotonic()
  # The learner's outputs stay tensors until a report needs them: reading
  # them back every step cost the learner thread time that acting threads
  # holding the GIL stretched (see benchmarks.throughput).
  step_metrics: Dict[str, tf.Tensor] = {}
  pending_returns: List[Any] = []
  status = "completed"

  def drain_returns():
    nonlocal episodes
    for per_replica in pending_returns:
      ep = np.concatenate([np.reshape(x, [-1]) for x in
                           strategy.experimental_local_results(per_replica)])
      finished = ep[~np.isnan(ep)]
      episodes += finished.size
      recent_returns.extend(finished.tolist())
    pending_returns.clear()
    del recent_returns[:-1000]

  def report_row():
    drain_returns()
    elapsed = max(time.monotonic() - start_time, 1e-9)
    row = _scalar_metrics(step_metrics)
    row.update(env_steps=int(env_steps.numpy()),
               learner_steps=int(learner.learner_steps.numpy()),
               wall_time_s=elapsed,
               fps=(int(env_steps.numpy()) - start_steps) / elapsed,
               episodes=episodes, actor_restarts=pool.restarts)
    # Always present (NaN before the first episode ends) so that metrics.csv,
    # whose columns are fixed by its first row, keeps the column.
    row["episode_return"] = (float(np.mean(recent_returns[-100:]))
                             if recent_returns else float("nan"))
    return row

  def write_summaries(row):
    csv_log.write(row)
    with writer.as_default(step=row["env_steps"]):
      for k, v in row.items():
        tf.summary.scalar(k, v)
    writer.flush()

  # Everything built so far lives as long as the run; moving it out of the
  # collector's generations keeps full collections (up to 0.18 s each on
  # Catch, stalling every thread) short.
  gc.collect()
  gc.freeze()
  try:
    while int(env_steps.numpy()) < options.total_env_steps:
      if stop.is_set():
        status = f"stopped by {stop.signal_name or 'request'}"
        break
      pool.supervise()
      try:
        step_metrics, stats = learner.step_from_iterator(iterator)
      except (StopIteration, tf.errors.OutOfRangeError,
              tf.errors.DeadlineExceededError):
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
      env_steps.assign_add(frames_per_step)
      step = int(learner.learner_steps.numpy())
      if step % options.weights_every == 0:
        publisher.offer(step)
      pending_returns.append(stats["episode_return"])
      if len(pending_returns) >= 256:  # Bounded whatever the report period.
        drain_returns()

      now = time.monotonic()
      if now - last["summary"] >= options.summary_every_s:
        last["summary"] = now
        write_summaries(report_row())
      if now - last["log"] >= options.log_every_s:
        last["log"] = now
        row = report_row()
        remaining = options.total_env_steps - row["env_steps"]
        # Vector metaparameters (DrMG) show as their mean, e.g. gamma/mean.
        metas = " ".join(f"{k[5:]}={v:.4g}" for k, v in sorted(row.items())
                         if k.startswith("meta/") and
                         ("/" not in k[5:] or k.endswith("/mean")))
        ret = row.get("episode_return", float("nan"))
        log(f"env_steps={row['env_steps']} "
            f"({100 * row['env_steps'] / options.total_env_steps:.1f}%) "
            f"fps={row['fps']:.0f} learner_steps={row['learner_steps']} "
            f"return={ret:.3f} {metas} "
            f"eta={_format_eta(remaining / max(row['fps'], 1e-9))}")
      if now - last["checkpoint"] >= options.checkpoint_every_s:
        last["checkpoint"] = now
        path = manager.save()
        log(f"saved checkpoint {path} env_steps={int(env_steps.numpy())} "
            f"learner_steps={step}")
  finally:
    gc.unfreeze()
    pool.stop()
    publisher.close()
    path = manager.save()
    log(f"saved checkpoint {path} env_steps={int(env_steps.numpy())} "
        f"learner_steps={int(learner.learner_steps.numpy())}")
    row = report_row()
    write_summaries(row)
    server.stop()

  summary = {"status": status, "env_steps": int(env_steps.numpy()),
             "learner_steps": int(learner.learner_steps.numpy()),
             "actor_restarts": pool.restarts,
             "episode_return": row.get("episode_return", float("nan"))}
  log(f"training {status}: env_steps={summary['env_steps']} "
      f"learner_steps={summary['learner_steps']}")
  if status != "completed":
    return summary
  if options.export:
    from export import export_policy  # pylint: disable=g-import-not-at-top
    path = os.path.join(options.logdir, "saved_model")
    export_policy.export(learner, spec, int(env_steps.numpy()), path)
    summary["saved_model"] = path
    log(f"exported policy to {path}")
  if options.eval_episodes > 0:
    returns = evaluate(learner, spec, options.eval_episodes,
                       seed=spec.seed + 1_000_003)
    summary["final_eval_mean_return"] = float(np.mean(returns))
    log(f"final_eval_mean_return={summary['final_eval_mean_return']:.4f} "
        f"(std {np.std(returns):.4f} over {len(returns)} greedy episodes)")
  return summary
