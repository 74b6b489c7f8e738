"""The training loop behind `trainers.train` (no flags here; see train.py).

One process runs the learner and, by default, the Reverb server and actor
threads:

  actors (threads | processes | remote) --unroll items--> Reverb queue
  Reverb queue --TrajectoryDataset--> learner (strategy) --weights--> Reverb

The learner counts environment steps as the frames it consumed (every item
in the queue is consumed exactly once), which makes the counter exact and
resumable. With overlapping items (`Options.unroll_stride` S < T, STAC's
control setup) an item brings S new frames per copy, so a learner step
counts S x batch environment steps, not the T x batch frames it trains on;
only each actor's first item, which holds T new frames, is counted short
(by T - S per copy, once per actor start). Checkpoints hold the learner
(network, optimizer and meta-optimizer state, metaparameters, learner step)
and the env-step counter.

Each learner call runs `steps_per_call` steps in one `tf.function` (the TPU
training-loop pattern, see `Learner.steps_from_iterator`); both counters
advance in that graph, and the host keeps its own copy of them, so between
calls it reads nothing back unless it logs, writes summaries, checkpoints or
publishes weights. Actors live in `tf_metagrad.trainers.actor_pool`, reports in
`tf_metagrad.trainers.outputs`.
"""

import dataclasses
import gc
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Optional

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import run_info
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import staged_input
from tf_metagrad.system import weights as weights_lib
from tf_metagrad.trainers import actor_pool
from tf_metagrad.trainers import cluster as cluster_lib
from tf_metagrad.trainers import evaluation
from tf_metagrad.trainers import outputs
from tf_metagrad.trainers import strategies


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
  eval_every_env_steps: int = 0  # Periodic greedy evaluation (0: none).
  preset: Optional[str] = None  # Recorded in run_spec.json only.
  # Steps between an actor's consecutive items, in [1, item unroll length];
  # None: the item unroll length (no overlap). See `system.actor`.
  unroll_stride: Optional[int] = None
  # CPU priority the actor processes lower themselves by (nice, 0-19).
  actor_nice: int = 0


class StopFlag:
  """Set by SIGTERM/SIGINT; the loop checkpoints and exits cleanly.

  `signum` and `signal_name` say which signal set it (None when set
  otherwise); the trainer exits with 128 + `signum`.
  """

  def __init__(self) -> None:
    self.event = threading.Event()
    self.signum = None
    self.signal_name = None

  def install(self) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    self.signal_name = signal.Signals(signum).name
    self.event.set()

  def is_set(self) -> bool:
    return self.event.is_set()


def item_unroll_length(spec: runs.RunSpec, unroll_length: int) -> int:
  """FRODO consumes M+1 consecutive unrolls per step (one item)."""
  if spec.agent == "frodo":
    return unroll_length * (runs.agent_config(spec).num_inner_steps + 1)
  return unroll_length




def _already_complete(spec: runs.RunSpec, options: Options, latest: str,
                      env_steps: int, strategy, log) -> Dict[str, Any]:
  """A finished run asked to train again: says so and writes nothing but a
  missing exported policy (the previous session may have been started with
  --noexport, or stopped while exporting)."""
  last_return = outputs.last_value(options.logdir, "episode_return")
  summary = {"status": "already complete", "env_steps": env_steps,
             "episode_return": last_return}
  line = (f"run in {options.logdir} already complete at {env_steps} env "
          f"steps (--total_env_steps={options.total_env_steps})")
  path = os.path.join(options.logdir, "saved_model")
  if options.export and cluster_lib.Cluster(strategy).is_chief and not (
      tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))):
    from tf_metagrad.export import export_policy  # pylint: disable=g-import-not-at-top
    learner = runs.build_learner(spec, strategy=strategy)
    with strategy.scope():
      counter = tf.Variable(0, dtype=tf.int64, trainable=False,
                            name="env_steps")
    runs.restore(runs.make_checkpoint(learner, env_steps=counter), latest)
    export_policy.export(learner, spec, env_steps, path)
    summary["saved_model"] = path
    line += f"; exported its missing policy to {path}"
  log(line)
  return summary


def _run_options(options: Options, strategy) -> Dict[str, Any]:
  """run_spec.json's descriptive record of how this session runs."""
  # Non-finite intervals ("never") as text: JSON has no infinity.
  recorded = {k: str(v) if isinstance(v, float) and not np.isfinite(v)
              else v for k, v in dataclasses.asdict(options).items()
              if k != "logdir"}
  recorded.update(strategy=strategies.name_of(strategy),
                  replicas=strategy.num_replicas_in_sync)
  recorded.update(runs.provenance())
  return recorded


class _FirstSession:
  """Undoes what the first session of a run wrote, when it made no learner
  step (no data came, a signal or an error stopped it first): such a start
  trained nothing to resume, and its run_spec.json and checkpoint at step
  0 would make the directory look like a run. Taken before anything is
  written, where no earlier session's run is (no run_spec.json, no
  checkpoint); what was there before (a folder the user made, their files)
  stays.
  """

  def __init__(self, logdir: str) -> None:
    self._logdir = logdir
    self._before = (set(tf.io.gfile.listdir(logdir))
                    if tf.io.gfile.isdir(logdir) else None)
    # The folders that creating a new local run directory creates above it
    # (runs/ of the default --logdir), deepest first.
    self._parents = []
    if self._before is None and runs.is_local(logdir):
      parent = os.path.dirname(os.path.abspath(logdir))
      while not os.path.exists(parent):
        self._parents.append(parent)
        parent = os.path.dirname(parent)

  def undo(self, log: Callable[[str], None]) -> None:
    """Removes what was not there when this was made; says so on `log`."""
    try:
      if self._before is None:
        if tf.io.gfile.exists(self._logdir):
          tf.io.gfile.rmtree(self._logdir)
        for parent in self._parents:
          if os.listdir(parent):
            break
          os.rmdir(parent)
        log(f"no learner step was made: removed the new run directory "
            f"{self._logdir}")
        return
      created = sorted(set(tf.io.gfile.listdir(self._logdir)) - self._before)
      for name in created:
        path = os.path.join(self._logdir, name)
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
      log(f"no learner step was made: removed what this session wrote to "
          f"{self._logdir} ({', '.join(created) or 'nothing'})")
    except (OSError, tf.errors.OpError) as e:
      # The session's own outcome (its error line) matters more.
      log(f"could not remove what this session wrote to {self._logdir}: "
          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def train(spec: runs.RunSpec, options: Options,
          strategy: Optional[tf.distribute.Strategy] = None,
          stop: Optional[StopFlag] = None,
          log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Trains (or resumes) the run in `options.logdir`; returns a summary.

  A first session that makes no learner step (stopped by a signal, by
  missing data or by an error first) removes what it wrote to the run
  directory; a session of a run that was there before keeps everything.
  """
  strategy = strategy or tf.distribute.get_strategy()
  stop = stop or StopFlag()
  if options.steps_per_call < 1:
    raise ValueError(
        f"steps_per_call must be >= 1, got {options.steps_per_call}.")
  if not 0 <= options.actor_nice <= 19 or (
      options.actor_nice and not options.num_actor_processes):
    raise ValueError(
        f"actor_nice={options.actor_nice} needs a value in [0, 19] and, when "
        f"> 0, num_actor_processes >= 1 (got "
        f"{options.num_actor_processes}).")
  if options.eval_every_env_steps < 0 or (
      options.eval_every_env_steps and options.eval_episodes < 1):
    raise ValueError(
        f"eval_every_env_steps={options.eval_every_env_steps} needs "
        f"eval_every_env_steps >= 0 and, when > 0, eval_episodes >= 1 (got "
        f"{options.eval_episodes}).")
  for name in ("unroll_length", "batch_size"):
    if getattr(spec, name) not in (None, getattr(options, name)):
      raise ValueError(f"spec.{name}={getattr(spec, name)} differs from "
                       f"options.{name}={getattr(options, name)}.")
  spec = dataclasses.replace(spec, unroll_length=options.unroll_length,
                             batch_size=options.batch_size,
                             run_options=_run_options(options, strategy))
  # Checked before anything is written, so that a finished run is left
  # untouched and a mismatched one is refused.
  spec = runs.resolve_spec(options.logdir, spec)
  unroll = item_unroll_length(spec, options.unroll_length)
  stride = items.resolve_stride(options.unroll_stride, unroll)
  latest = runs.latest_checkpoint(options.logdir)
  runs.check_checkpoint_index(options.logdir, latest)
  if latest:
    done = runs.checkpoint_env_steps(latest)
    if done is not None and done >= options.total_env_steps:
      return _already_complete(spec, options, latest, done, strategy, log)
  cluster = cluster_lib.Cluster(strategy)
  found = None
  if cluster.is_chief and not latest and not tf.io.gfile.exists(
      os.path.join(options.logdir, runs.SPEC_FILE)):
    found = _FirstSession(options.logdir)
  progress = {"learner_steps": 0}
  try:
    return _session(spec, options, strategy, stop, log, cluster, unroll,
                    stride, progress)
  finally:
    if found is not None and not progress["learner_steps"]:
      found.undo(log)


def _session(spec: runs.RunSpec, options: Options,
             strategy: tf.distribute.Strategy, stop: StopFlag,
             log: Callable[[str], None], cluster: cluster_lib.Cluster,
             unroll: int, stride: int,
             progress: Dict[str, int]) -> Dict[str, Any]:
  """`train` from the first write on; counts the learner steps this
  session made in `progress["learner_steps"]`, also when it fails."""
  # Only the chief writes the run directory; another worker writes what
  # would go there (summaries, its checkpoints, actor logs) to a scratch
  # directory of its own, removed when the run ends well.
  if cluster.is_chief:
    tf.io.gfile.makedirs(options.logdir)
    spec = runs.check_or_save_spec(options.logdir, spec)
    own = options
  else:
    own = dataclasses.replace(options, logdir=tempfile.mkdtemp(
        prefix=f"tf_metagrad_worker{cluster.index}_"))
    log(f"{cluster.name}: not the chief; scratch directory {own.logdir}")

  learner = runs.build_learner(spec, strategy=strategy)
  with strategy.scope():
    env_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                            name="env_steps")
  checkpoint = runs.make_checkpoint(learner, env_steps=env_steps)
  manager = runs.checkpoint_manager(own.logdir, checkpoint,
                                    max_to_keep=3 if cluster.is_chief else 1)
  # Every worker restores the chief's checkpoint (TF's multi-worker rule).
  resume_from = runs.latest_checkpoint(options.logdir)
  if resume_from:
    runs.restore(checkpoint, resume_from)
    log(f"resumed from {resume_from}: "
        f"env_steps={int(env_steps.numpy())} "
        f"learner_steps={int(learner.learner_steps.numpy())}")
  guarded = list(learner.variables) + [env_steps]
  cluster.check_consistent(guarded)

  env = runs.make_env(spec)
  obs_spec, action_space = env.observation_spec, env.action_space
  env.close()
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
  first_learner_step = counts["learner"]
  weights_lib.publish(client, variables, counts["learner"])
  # After the weights: an actor that finds the run info finds weights too.
  run_info.publish(client, run_info.describe(
      spec, unroll, item_spec, options.envs_per_actor,
      options.actor_refresh_every, unroll_stride=stride))
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
  # Each worker's actors act on seeds of their own.
  pool = actor_pool.ActorPool(
      dataclasses.replace(spec, seed=spec.seed + 7919 * cluster.index), own,
      address, unroll, stop.event, log, stride=stride)
  pool.start()
  # Several workers stage their batches before each collective step (see
  # `system.staged_input`); one process reads Reverb inside the step.
  staged = None
  if cluster.num_workers > 1:
    staged = staged_input.StagedInput(
        strategy, address, item_spec, options.batch_size,
        int(options.data_timeout_s * 1000),
        capacity=2 * options.steps_per_call)
    staged.start()
    dataset = staged.dataset()
  else:
    dataset = dataset_lib.distributed_dataset(
        strategy, address, item_spec, options.batch_size,
        int(options.data_timeout_s * 1000))
  iterator = iter(dataset)

  # New environment frames per learner step (see the module docstring).
  frames_per_step = stride * options.batch_size
  reporter = outputs.Reporter(own.logdir, strategy,
                              options.total_env_steps, counts["env"])
  resolved = dataclasses.asdict(runs.agent_config(spec))
  resolved.update(agent=spec.agent, env=spec.env, seed=spec.seed,
                  env_kwargs=spec.env_kwargs)
  resolved.update(spec.run_options)
  reporter.write_config(resolved, counts["env"], log)
  evaluator = None
  if options.eval_every_env_steps and cluster.is_chief:
    evaluator = evaluation.PeriodicEvaluator(spec, variables,
                                  options.eval_every_env_steps,
                                  options.eval_episodes, counts["env"])
    evaluator.start()
  status = "completed"

  def save():
    cluster.check_consistent(guarded)
    path = manager.save()
    reporter.flush()
    if cluster.is_chief:
      log(f"saved checkpoint {path} env_steps={counts['env']} "
          f"learner_steps={counts['learner']}")

  def report():
    return reporter.row(counts["env"], counts["learner"], pool.restarts)

  def write_evaluations():
    for env_count, learner_count, mean in evaluator.results():
      reporter.write_eval(env_count, learner_count, mean)
      log(f"eval/mean_return={mean:.4f} at env_steps={env_count} "
          f"({options.eval_episodes} greedy episodes)")

  # Everything built so far lives as long as the run; moving it out of the
  # collector's generations keeps full collections (up to 0.18 s each on
  # Catch, stalling every thread) short.
  gc.collect()
  gc.freeze()
  last_data = time.monotonic()
  no_data_error = None
  lost = None
  try:
    while counts["env"] < options.total_env_steps:
      # The last call stops at the run's length, as single steps would.
      num_steps = min(options.steps_per_call, -(
          -(options.total_env_steps - counts["env"]) // frames_per_step))
      # Every worker decides from the same votes (see cluster.py).
      failure = None
      ready = True
      try:
        pool.supervise()
        if staged is not None:
          ready = staged.wait_ready(num_steps, options.data_timeout_s)
      except RuntimeError as e:
        failure = e
      if staged is not None and ready:
        last_data = time.monotonic()
      starved = (not ready and time.monotonic() - last_data
                 > options.max_data_wait_s)
      votes = cluster.vote({"signal": stop.is_set(),
                            "no_data": no_data_error is not None or starved,
                            "error": failure is not None,
                            "waiting": not ready})
      if failure is not None:
        raise failure
      if votes["error"]:
        raise RuntimeError(f"{', '.join(votes['error'])} failed (see its "
                           f"output); every worker stops")
      if no_data_error is not None:
        raise no_data_error
      if votes["no_data"]:
        raise RuntimeError(f"no trajectories on {', '.join(votes['no_data'])}"
                           f" for longer than max_data_wait_s="
                           f"{options.max_data_wait_s}; every worker stops")
      if votes["signal"]:
        by = (stop.signal_name or "request") if stop.is_set() else "a signal"
        status = f"stopped by {by}"
        if cluster.num_workers > 1:
          status += f" on {', '.join(votes['signal'])}"
        break
      if votes["waiting"]:
        # Some worker lacks this call's batches: nobody enters the step.
        log(f"waiting for trajectories on {', '.join(votes['waiting'])}")
        continue
      try:
        metrics, extras = learner.steps_from_iterator(
            iterator, num_steps, env_steps=env_steps,
            frames_per_step=frames_per_step,
            max_steps=options.steps_per_call)
      except (StopIteration, tf.errors.OutOfRangeError,
              tf.errors.DeadlineExceededError):
        counts.update(env=int(env_steps.numpy()),
                      learner=int(learner.learner_steps.numpy()))
        waited = time.monotonic() - last_data
        if waited > options.max_data_wait_s:
          # Raised after the next vote, so that the others stop too.
          no_data_error = RuntimeError(
              f"No trajectories for {waited:.0f}s (max_data_wait_s="
              f"{options.max_data_wait_s}); are any actors running? "
              f"(num_actors={options.num_actors}, num_actor_processes="
              f"{options.num_actor_processes}; external actors connect "
              f"with --reverb_address=HOST:{server.port})")
        log(f"waiting for trajectories ({waited:.0f}s)")
        iterator = iter(dataset)
        continue
      last_data = time.monotonic()
      previous = counts["learner"]
      counts["env"] += num_steps * frames_per_step
      counts["learner"] += num_steps * learner.updates_per_batch
      # Publish when the call crossed a multiple of weights_every.
      if counts["learner"] // options.weights_every > (
          previous // options.weights_every):
        publisher.offer(counts["learner"])
      reporter.add(metrics, extras, counts["env"], num_rows=num_steps)
      if evaluator is not None:
        evaluator.offer(counts["env"], counts["learner"])
        write_evaluations()

      if reporter.due("summary", options.summary_every_s):
        reporter.write(report(), learner.meta_values())
      if reporter.due("log", options.log_every_s):
        log(reporter.progress_line(report()))
      # Every worker must save at the same call (a save exchanges
      # fingerprints), so the chief's clock decides for all.
      due = reporter.due("checkpoint", options.checkpoint_every_s)
      if cluster.num_workers > 1:
        due = bool(cluster.gather([float(due)])[0, 0])
      if due:
        save()
  except tf.errors.OpError as e:
    lost = cluster.lost_worker(e)
    if lost is None:
      raise
    raise RuntimeError(lost) from None
  finally:
    progress["learner_steps"] = counts["learner"] - first_learner_step
    gc.unfreeze()
    if staged is not None:
      staged.close()
    pool.stop()
    publisher.close()
    # After a lost worker no collective can complete, and the chief's last
    # checkpoint is what a restart resumes from. Without a learner step
    # there is nothing new to save (every worker's count is the same).
    if lost is None and progress["learner_steps"]:
      save()
    row = report()
    reporter.write(row, learner.meta_values())
    reporter.flush()
    server.stop()
    if evaluator is not None:
      # Bounded: an evaluation of a policy that never ends its episodes
      # must not hold up the checkpointed run's exit, and a stopped run
      # (SIGTERM) should exit promptly.
      wait_s = 60.0 if counts["env"] >= options.total_env_steps else 5.0
      if not evaluator.close(timeout_s=wait_s):
        log(f"periodic evaluation still running after {wait_s:.0f}s; "
            f"abandoned")
      write_evaluations()
      if evaluator.error is not None:
        log(f"periodic evaluation failed: {evaluator.error!r}")
      if evaluator.skipped:
        log(f"{evaluator.skipped} periodic evaluation(s) skipped while the "
            f"previous one was running")

  summary = {"status": status, "env_steps": counts["env"],
             "learner_steps": counts["learner"],
             "actor_restarts": pool.restarts,
             "episode_return": row.get("episode_return", float("nan"))}
  log(f"training {status}: env_steps={summary['env_steps']} "
      f"learner_steps={summary['learner_steps']}")
  if cluster.num_workers > 1:
    log(f"{cluster.name}: variables fingerprint {cluster.digest(guarded)}")
  if not cluster.is_chief:
    # Leaves with the chief (after its export and evaluation), so that
    # neither process outlives the other's coordination service.
    cluster.barrier()
    shutil.rmtree(own.logdir, ignore_errors=True)
    return summary
  try:
    if status == "completed":
      _finish(learner, spec, options, counts, summary, reporter, log)
  finally:
    cluster.barrier()
  return summary


def _finish(learner, spec: runs.RunSpec, options: Options,
            counts: Dict[str, int], summary: Dict[str, Any],
            reporter: outputs.Reporter, log: Callable[[str], None]) -> None:
  """The chief's end of a completed run: export, final evaluation."""
  if options.export:
    from tf_metagrad.export import export_policy  # pylint: disable=g-import-not-at-top
    path = os.path.join(options.logdir, "saved_model")
    export_policy.export(learner, spec, counts["env"], path)
    summary["saved_model"] = path
    log(f"exported policy to {path}")
  if options.eval_episodes > 0:
    seed = spec.seed + evaluation.EVAL_SEED_OFFSET
    returns = evaluation.evaluate(learner, spec, options.eval_episodes, seed)
    summary["final_eval_mean_return"] = float(np.mean(returns))
    reporter.write_eval(counts["env"], counts["learner"],
                        summary["final_eval_mean_return"])
    log(f"final_eval_mean_return={summary['final_eval_mean_return']:.4f} "
        f"(std {np.std(returns):.4f} over {len(returns)} greedy episodes)")
