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
used, which can only lower the ratio. The last line is machine-readable:
  env_steps_per_s=<float> learner_ceiling_steps_per_s=<float> ratio=<float>
"""

import csv
import os
import tempfile
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


def _learner_step_times(spec, unroll: int, batch: int, repeats: int):
  """Wall seconds of `repeats` learner-only steps after two warm-up steps."""
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
  times = []
  for i in range(repeats + 2):
    start = time.perf_counter()
    metrics = learner.step(data)
    float(metrics["inner_loss"])
    if i >= 2:
      times.append(time.perf_counter() - start)
  return np.array(times)


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
  before = _learner_step_times(spec, item_unroll, batch,
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
  summary = loop.train(spec, options, log=print)
  rate = _steady_rate(os.path.join(logdir, "metrics.csv"),
                      FLAGS.warmup_fraction)
  after = _learner_step_times(spec, item_unroll, batch,
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
  print(f"env_steps_per_s={rate:.1f} learner_ceiling_steps_per_s="
        f"{ceiling:.1f} ratio={rate / ceiling:.3f}")


if __name__ == "__main__":
  app.run(main)
