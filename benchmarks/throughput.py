r"""End-to-end environment steps per second of the whole training system.

  python -m benchmarks.throughput --agent=stac --env=catch

Runs the real trainer loop (embedded Reverb, actor threads, learner) for a
fixed env-step budget and measures the steady-state rate from its
metrics (the first --warmup_fraction of the run, which includes
tf.function tracing, is left out). The learner alone is timed in the same
process on random batches of the same shape, before and after the run; its
ceiling is the new frames of a batch (S x B for a stride of S steps between
an actor's items, T x B without overlap) over the mean step time, the same
statistic as the run's rate (frames over elapsed time). Step times on this
shared 2-core machine are skewed (a tail of slow steps even with nothing
else running), so the median would overstate what the learner sustains;
both are printed, and the higher of the two ceilings (before, after) is
used, which can only lower the ratio. Two `cpu` lines say where the CPU
went in the run's steady part (from the first progress line past
--warmup_fraction of its env steps to the last, before the shutdown), per
learner step (learner steps counted from the steady rate): in all, against
the learner alone (process CPU of the learner-only steps), and by thread
group (from /proc, see `benchmarks.thread_cpu`). After the run, the actors
alone act and write for --acting_unrolls unrolls each
(`_acting_cpu_per_frame`): their CPU per frame, times a learner step's new
frames, is what acting costs a learner step, TF's pool threads included.
The last line is machine-readable:
  env_steps_per_s=<float> learner_ceiling_steps_per_s=<float> ratio=<float>
"""

import math
import re
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np
import reverb

from benchmarks import common
from benchmarks import thread_cpu
from tf_metagrad import runs
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import reverb_actor as actor_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib
from tf_metagrad.training import loop
from tf_metagrad.training import outputs
from tf_metagrad.training import resolve

FLAGS = flags.FLAGS
_THREADS = common.define_thread_flags()
flags.DEFINE_string("agent", "stac", "Agent.")
flags.DEFINE_string("env", "catch", "Environment.")
flags.DEFINE_integer("total_env_steps", 600_000, "Env steps of the run.")
flags.DEFINE_integer("num_actors", 2, "Actor threads.")
flags.DEFINE_integer("num_actor_processes", 0, "Actor processes.")
flags.DEFINE_integer("actor_nice", 0, "CPU priority the actor processes "
                     "lower themselves by (0-19), as trainers.train's.")
flags.DEFINE_integer("envs_per_actor", None, "Default: preset.")
flags.DEFINE_integer("unroll_length", None, "Default: preset.")
flags.DEFINE_integer("batch_size", None, "Default: preset.")
flags.DEFINE_integer("unroll_stride", None, "Steps between an actor's "
                     "items (overlapping unrolls). Default: the preset's, "
                     "at most the item's unroll length.")
flags.DEFINE_float("warmup_fraction", 0.25, "Leading part of the run left "
                   "out of the rate.")
flags.DEFINE_integer("acting_unrolls", 8, "Unrolls each actor thread "
                     "writes in the acting-only measurement (0: skip it).")
_HEAD_HIDDEN_SIZES = common.define_head_flag()
_COMPUTE_DTYPE = common.define_compute_dtype_flag()
flags.DEFINE_integer("steps_per_call", 1, "Learner steps per tf.function "
                     "call in the run (the ceiling is single steps).",
                     lower_bound=1)
flags.DEFINE_integer("ceiling_repeats", 60, "Learner-only timed steps, "
                     "before and after the run each.")


def _steady_rate(logdir: str, warmup_fraction: float) -> float:
  rows = [r for r in outputs.read_metrics(logdir)[1]
          if r.get("wall_time_s")]
  steps = np.array([float(r["env_steps"]) for r in rows])
  wall = np.array([float(r["wall_time_s"]) for r in rows])
  start = np.searchsorted(steps, steps[-1] * warmup_fraction)
  start = min(start, len(steps) - 2)
  return (steps[-1] - steps[start]) / (wall[-1] - wall[start])


def _learner_step_times(spec, unroll: int, batch: int, repeats: int,
                        announce: bool = False):
  """Wall seconds of `repeats` learner-only steps after two warm-up steps
  (the batch is checked on the host once, as the loop checks none), and the
  process CPU seconds per timed step; `announce` prints the network first."""
  learner = runs.build_learner(spec)
  if announce:
    config = learner.config
    print(f"network: torso={learner.network.torso_kind} "
          f"mlp_hidden_sizes={config.mlp_hidden_sizes} "
          f"head_hidden_sizes={config.head_hidden_sizes} "
          f"compute_dtype={learner.network.compute_dtype} "
          f"unroll_length={unroll} batch_size={batch}", flush=True)
  observation_spec, action_space = runs.env_specs(spec)
  if not hasattr(action_space, "n"):
    raise app.UsageError("benchmarks.throughput measures discrete-action "
                         "environments only.")
  data = common.random_trajectory(
      np.random.default_rng(0), unroll, batch,
      observation_spec.shape.as_list(), observation_spec.dtype.name,
      int(action_space.n))
  learner.step(data)
  call = lambda: learner.step(data, check=False)["inner_loss"]
  for _ in range(2):
    common.timed_call(call)
  cpu_start = time.process_time()
  times = [common.timed_call(call) for _ in range(repeats)]
  return np.array(times), (time.process_time() - cpu_start) / repeats


def _acting_cpu_per_frame(spec, unroll: int, stride: int, envs_per_actor: int,
                          num_actors: int, refresh_every: int,
                          unrolls: int) -> float:
  """Process CPU seconds per env frame of the run's actor threads alone.

  The same actors as the run's (network, copies, unroll, stride and weight
  refreshes), with weights published once, write into a FIFO table of the
  run's item signature that nobody reads: a full table drops its oldest
  item, so the actors never wait. What is measured is acting and writing,
  the policy's ops on TF's pools included, which the run's per-thread
  figures cannot tell from the learner's. The first unroll of each actor
  (tracing, the first weights) is left out.
  """
  obs_spec, action_space = runs.env_specs(spec)
  published = networks_lib.make_network(runs.agent_config(spec), obs_spec,
                                        action_space)
  item_spec = items.item_spec(obs_spec, action_space, unroll,
                              core_state_spec=published.core_state_spec())
  tables = common.free_running_tables(item_spec, published.variables,
                                      max_size=4 * num_actors)
  server = server_lib.start_server(tables)
  address = server_lib.local_address(server.port)
  actors = []
  try:
    weights_lib.publish(reverb.Client(address), published.variables, 0)
    actors = [actor_lib.make_actor(
        reverb.Client(address), spec, num_envs=envs_per_actor,
        unroll_length=unroll, seed=index, refresh_every=refresh_every,
        unroll_stride=stride) for index in range(num_actors)]
    _act(actors, 1)  # Tracing and the first weights: left out.
    frames = sum(a.stats.env_steps for a in actors)
    cpu = time.process_time()
    _act(actors, 1 + unrolls)
    cpu = time.process_time() - cpu
    frames = sum(a.stats.env_steps for a in actors) - frames
    return cpu / (frames * envs_per_actor)
  finally:
    for a in actors:
      a.close()
    server.stop()


def _act(actors, max_unrolls: int) -> None:
  """Runs each actor in a thread of its own until it has written
  `max_unrolls` unrolls in all; an actor's error is raised here."""
  errors = []

  def run(actor):
    try:
      actor.run(max_unrolls=max_unrolls)
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=run, args=(a,), name=f"actor-{i}",
                              daemon=True)
             for i, a in enumerate(actors)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=600)
    if thread.is_alive():
      raise RuntimeError("an acting-only actor did not finish in 600 s")
  if errors:
    raise errors[0]


def _spec_and_options(logdir: str):
  """The run this benchmark trains, resolved from its flags as the trainer
  resolves its own (`training.resolve`)."""
  config = {}
  heads = common.head_hidden_sizes(_HEAD_HIDDEN_SIZES)
  if heads is not None:
    config["head_hidden_sizes"] = heads
  config.update(common.compute_overrides(_COMPUTE_DTYPE.value))
  return resolve.resolve(
      FLAGS.agent, FLAGS.env, logdir, FLAGS.total_env_steps,
      config_overrides=config, unroll_length=FLAGS.unroll_length,
      batch_size=FLAGS.batch_size, envs_per_actor=FLAGS.envs_per_actor,
      unroll_stride=FLAGS.unroll_stride, num_actors=FLAGS.num_actors,
      num_actor_processes=FLAGS.num_actor_processes,
      actor_nice=FLAGS.actor_nice, eval_episodes=0, export=False,
      summary_every_s=1.0, log_every_s=0.5, checkpoint_every_s=1e9,
      steps_per_call=FLAGS.steps_per_call)


def main(argv):
  del argv
  print(common.configure_threads(_THREADS), flush=True)
  logdir = tempfile.mkdtemp(prefix="tf_metagrad_throughput_")
  spec, options = _spec_and_options(logdir)
  batch, stride = options.batch_size, options.unroll_stride
  item_unroll = runs.item_unroll_length(spec, options.unroll_length)
  before, cpu_before = _learner_step_times(spec, item_unroll, batch,
                                           FLAGS.ceiling_repeats,
                                           announce=True)
  sampler = thread_cpu.ThreadCpu()
  sampler.start()
  progress = _ProgressLog()
  summary = loop.train(spec, options, log=progress)
  sampler.stop()
  rate = _steady_rate(logdir, FLAGS.warmup_fraction)
  after, cpu_after = _learner_step_times(spec, item_unroll, batch,
                                         FLAGS.ceiling_repeats)

  frames = stride * batch
  for name, times in (("before", before), ("after", after)):
    print(f"learner-only step {name} the run: mean {1e3 * times.mean():.1f} "
          f"ms, median {1e3 * np.median(times):.1f} ms, p90 "
          f"{1e3 * np.percentile(times, 90):.1f} ms for {item_unroll} x "
          f"{batch} frames, {frames} of them new")
  ceiling = frames / min(before.mean(), after.mean())
  median_ceiling = frames / min(np.median(before), np.median(after))
  print(f"run: {summary['env_steps']} env steps, {summary['learner_steps']} "
        f"learner steps, {FLAGS.num_actors} actor threads + "
        f"{FLAGS.num_actor_processes} actor processes (nice "
        f"{FLAGS.actor_nice}) x "
        f"{options.envs_per_actor} envs, {FLAGS.steps_per_call} learner "
        f"step(s) per call; ratio to the median-step ceiling "
        f"({median_ceiling:.1f}): {rate / median_ceiling:.3f}")
  _print_cpu(sampler, rate / frames, min(cpu_before, cpu_after),
             progress.steady_window(FLAGS.warmup_fraction))
  if FLAGS.acting_unrolls:
    # Actor processes run the same actor: one thread here measures what a
    # frame of theirs costs when the run has no actor threads.
    acting = _acting_cpu_per_frame(
        spec, item_unroll, stride, options.envs_per_actor,
        max(FLAGS.num_actors, 1), options.actor_refresh_every,
        FLAGS.acting_unrolls)
    print(f"cpu of acting alone: {1e6 * acting:.1f} us per env frame, "
          f"{1e3 * acting * frames:.1f} ms for a learner step's {frames} new "
          f"frames")
  print(f"env_steps_per_s={rate:.1f} learner_ceiling_steps_per_s="
        f"{ceiling:.1f} ratio={rate / ceiling:.3f}")


class _ProgressLog:
  """The run's `log`: prints its lines (progress lines at most every 10 s)
  and keeps (monotonic time, env steps) of each progress line, which the
  loop writes only while it trains."""

  def __init__(self):
    self.progress = []
    self._printed = -math.inf

  def __call__(self, line: str) -> None:
    match = re.match(r"env_steps=(\d+) ", line)
    if match:
      now = time.monotonic()
      self.progress.append((now, int(match.group(1))))
      if now - self._printed < 10.0:
        return
      self._printed = now
    print(line, flush=True)

  def steady_window(self, warmup_fraction: float):
    """(start, end) times: from the first progress line past
    `warmup_fraction` of the last one's env steps (the rate's cut) to the
    last; None without two such lines."""
    if not self.progress:
      return None
    cut = self.progress[-1][1] * warmup_fraction
    start = next(t for t, steps in self.progress if steps >= cut)
    end = self.progress[-1][0]
    return (start, end) if end > start else None


def _print_cpu(sampler, learner_steps_per_s: float, learner_only_cpu_s,
               window):
  """Where the CPU went in the run's steady `window` (start, end; None:
  none), per learner step at the steady rate."""
  split = None if window is None else sampler.per_group(*window)
  if split is None:
    print("cpu: the run was too short to sample")
    return
  wall, groups = split
  steps = learner_steps_per_s * wall
  total = sum(groups.values())
  processes = FLAGS.num_actor_processes
  outside = (f" (not counting {processes} actor process"
             f"{'es' if processes > 1 else ''})" if processes else "")
  print(f"cpu: {total / wall:.2f} cores busy over the last "
        f"{wall:.1f} s{outside}, {1e3 * total / steps:.1f} ms per learner "
        f"step; the learner alone took {1e3 * learner_only_cpu_s:.1f} ms per "
        f"step")
  parts = sorted(groups.items(), key=lambda kv: -kv[1])
  print("cpu per learner step by thread group: " + ", ".join(
      f"{group} {1e3 * cpu / steps:.1f} ms" for group, cpu in parts
      if cpu / steps >= 5e-5))


if __name__ == "__main__":
  app.run(main)
