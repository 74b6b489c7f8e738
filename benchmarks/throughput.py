r"""End-to-end environment steps per second of the whole training system.

  python -m benchmarks.throughput --agent=stac --env=catch

Runs the real trainer loop (embedded Reverb, actor threads, learner) for a
fixed env-step budget and measures the steady-state rate from its
metrics.csv (the first --warmup_fraction of the run, which includes
tf.function tracing, is left out). The learner alone is timed in the same
process on random batches of the same shape, before and after the run; its
ceiling is the new frames of a batch (S x B for a stride of S steps between
an actor's items, T x B without overlap) over the mean step time, the same
statistic as the run's rate (frames over elapsed time). Step times on this
shared 2-core machine are skewed (a tail of slow steps even with nothing
else running), so the median would overstate what the learner sustains;
both are printed, and the higher of the two ceilings (before, after) is
used, which can only lower the ratio. Two `cpu` lines say where the CPU
went over the last (1 - --warmup_fraction) of the run, per learner step
(learner steps counted from the steady rate): in all, against the learner
alone (process CPU of the learner-only steps), and by thread group (from
/proc, see `_ThreadCpu`). The last line is machine-readable:
  env_steps_per_s=<float> learner_ceiling_steps_per_s=<float> ratio=<float>
"""

import collections
import csv
import os
import re
import tempfile
import threading
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from tf_metagrad import runs
from tf_metagrad.trainers import loop
from tf_metagrad.trainers import presets

FLAGS = flags.FLAGS
_THREADS = common.define_thread_flags()
flags.DEFINE_string("agent", "stac", "Agent.")
flags.DEFINE_string("env", "catch", "Environment.")
flags.DEFINE_integer("total_env_steps", 600_000, "Env steps of the run.")
flags.DEFINE_integer("num_actors", 2, "Actor threads.")
flags.DEFINE_integer("num_actor_processes", 0, "Actor processes.")
flags.DEFINE_integer("envs_per_actor", None, "Default: preset.")
flags.DEFINE_integer("unroll_length", None, "Default: preset.")
flags.DEFINE_integer("batch_size", None, "Default: preset.")
flags.DEFINE_integer("unroll_stride", None, "Steps between an actor's "
                     "items (overlapping unrolls). Default: the preset's, "
                     "at most the item's unroll length.")
flags.DEFINE_float("warmup_fraction", 0.25, "Leading part of the run left "
                   "out of the rate.")
flags.DEFINE_integer("ceiling_repeats", 60, "Learner-only timed steps, "
                     "before and after the run each.")


def _steady_rate(path: str, warmup_fraction: float) -> float:
  with open(path, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r.get("wall_time_s")]
  steps = np.array([float(r["env_steps"]) for r in rows])
  wall = np.array([float(r["wall_time_s"]) for r in rows])
  start = np.searchsorted(steps, steps[-1] * warmup_fraction)
  start = min(start, len(steps) - 2)
  return (steps[-1] - steps[start]) / (wall[-1] - wall[start])


class _ThreadCpu(threading.Thread):
  """Samples the CPU time of every thread of this process from /proc.

  Each sample maps a thread to its group and its CPU seconds so far. The
  group is the Python thread's name with its index dropped ("actor",
  "weights-publisher", "MainThread": the learner loop) or "unnamed" for the
  threads Python did not start: TF's op pools (the learner's step, and the
  ops of the actors' policy calls that TF hands to its pools), Reverb's and
  gRPC's, which TF 2.15 and Reverb leave with the process's name.
  """

  def __init__(self, every_s: float = 0.5):
    super().__init__(name="cpu-sampler", daemon=True)
    self.samples = []  # (monotonic time, {tid: (group, cpu seconds)})
    self._every_s = every_s
    self._done = threading.Event()

  @staticmethod
  def snapshot():
    names = {t.native_id: re.sub(r"-\d+$", "", t.name)
             for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
      try:
        with open(f"/proc/self/task/{tid}/stat") as f:
          stat = f.read()
      except OSError:  # The thread ended.
        continue
      comm = stat[stat.index("(") + 1:stat.rindex(")")]
      fields = stat[stat.rindex(")") + 2:].split()
      cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
      out[int(tid)] = (names.get(int(tid), f"unnamed ({comm})"), cpu)
    return out

  def run(self):
    while not self._done.wait(self._every_s):
      self.samples.append((time.monotonic(), self.snapshot()))

  def stop(self):
    self._done.set()
    self.join()

  def per_group(self, start_fraction: float):
    """(wall seconds, {group: CPU seconds}) from the sample at
    `start_fraction` of the sampled time to the last sample."""
    first_t, last_t = self.samples[0][0], self.samples[-1][0]
    cut = first_t + start_fraction * (last_t - first_t)
    begin = next(s for s in self.samples if s[0] >= cut)
    (t0, a), (t1, b) = begin, self.samples[-1]
    groups = collections.defaultdict(float)
    for tid, (group, cpu) in b.items():
      groups[group] += cpu - a.get(tid, (group, 0.0))[1]
    return t1 - t0, dict(groups)


def _learner_step_times(spec, unroll: int, batch: int, repeats: int):
  """Wall seconds of `repeats` learner-only steps after two warm-up steps
  (the batch is checked on the host once, as the loop checks none), and the
  process CPU seconds per timed step."""
  learner = runs.build_learner(spec)
  env = runs.make_env(spec)
  try:
    if not hasattr(env.action_space, "n"):
      raise app.UsageError("benchmarks.throughput measures discrete-action "
                           "environments only.")
    data = common.random_trajectory(
        np.random.default_rng(0), unroll, batch,
        env.observation_spec.shape.as_list(),
        env.observation_spec.dtype.name, int(env.action_space.n))
  finally:
    env.close()
  learner.step(data)
  times = []
  cpu_start = 0.0
  for i in range(repeats + 2):
    if i == 2:
      cpu_start = time.process_time()
    start = time.perf_counter()
    metrics = learner.step(data, check=False)
    float(metrics["inner_loss"])
    if i >= 2:
      times.append(time.perf_counter() - start)
  return np.array(times), (time.process_time() - cpu_start) / repeats


def main(argv):
  del argv
  print(common.configure_threads(_THREADS), flush=True)
  preset = presets.PRESETS[presets.family(FLAGS.env)]
  unroll = FLAGS.unroll_length or preset.unroll_length
  batch = FLAGS.batch_size or preset.batch_size
  config = dict(preset.config)
  config.pop("end_learning_rate", None)
  spec = runs.RunSpec(agent=FLAGS.agent, env=FLAGS.env,
                      config_overrides=config)
  item_unroll = loop.item_unroll_length(spec, unroll)
  stride = FLAGS.unroll_stride or preset.stride_for(item_unroll)
  before, cpu_before = _learner_step_times(spec, item_unroll, batch,
                                           FLAGS.ceiling_repeats)
  logdir = tempfile.mkdtemp(prefix="tf_metagrad_throughput_")
  options = loop.Options(
      logdir=logdir, total_env_steps=FLAGS.total_env_steps,
      unroll_length=unroll, batch_size=batch, unroll_stride=stride,
      num_actors=FLAGS.num_actors,
      num_actor_processes=FLAGS.num_actor_processes,
      envs_per_actor=FLAGS.envs_per_actor or preset.envs_per_actor,
      eval_episodes=0, export=False, summary_every_s=1.0, log_every_s=10.0,
      checkpoint_every_s=1e9)
  sampler = _ThreadCpu()
  sampler.start()
  summary = loop.train(spec, options, log=print)
  sampler.stop()
  rate = _steady_rate(os.path.join(logdir, "metrics.csv"),
                      FLAGS.warmup_fraction)
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
        f"{FLAGS.num_actor_processes} actor processes x "
        f"{options.envs_per_actor} envs; ratio to the median-step ceiling "
        f"({median_ceiling:.1f}): {rate / median_ceiling:.3f}")
  _print_cpu(sampler, rate / frames, min(cpu_before, cpu_after))
  print(f"env_steps_per_s={rate:.1f} learner_ceiling_steps_per_s="
        f"{ceiling:.1f} ratio={rate / ceiling:.3f}")


def _print_cpu(sampler, learner_steps_per_s: float, learner_only_cpu_s):
  """Where the CPU went over the last (1 - --warmup_fraction) of the
  sampled time, per learner step at the steady rate."""
  if len(sampler.samples) < 2:
    print("cpu: the run was too short to sample")
    return
  wall, groups = sampler.per_group(FLAGS.warmup_fraction)
  steps = learner_steps_per_s * wall
  total = sum(groups.values())
  print(f"cpu: {total / wall:.2f} cores busy over the last "
        f"{wall:.1f} s, {1e3 * total / steps:.1f} ms per learner step; "
        f"the learner alone took {1e3 * learner_only_cpu_s:.1f} ms per step")
  parts = sorted(groups.items(), key=lambda kv: -kv[1])
  print("cpu per learner step by thread group: " + ", ".join(
      f"{group} {1e3 * cpu / steps:.1f} ms" for group, cpu in parts
      if cpu / steps >= 5e-5))


if __name__ == "__main__":
  app.run(main)
