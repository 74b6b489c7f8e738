r"""End-to-end environment steps per second of the whole training system.

  python -m benchmarks.throughput --agent=stac --env=catch [--seconds=60]

Runs the real trainer loop (embedded Reverb, actor threads, learner) for a
fixed env-step budget, measures the steady-state rate from its metrics.csv
(the first --warmup_fraction of the run, which includes tf.function tracing,
is left out), then measures the learner alone on random batches of the same
shape in the same process: its ceiling is T x B / (median step time). The
last line is machine-readable:
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
from trainers import loop
from trainers import presets

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "stac", "Agent.")
flags.DEFINE_string("env", "catch", "Environment.")
flags.DEFINE_integer("total_env_steps", 600_000, "Env steps of the run.")
flags.DEFINE_integer("num_actors", 2, "Actor threads.")
flags.DEFINE_integer("num_actor_processes", 0, "Actor processes.")
flags.DEFINE_integer("envs_per_actor", None, "Default: preset.")
flags.DEFINE_integer("unroll_length", None, "Default: preset.")
flags.DEFINE_integer("batch_size", None, "Default: preset.")
flags.DEFINE_float("warmup_fraction", 0.25, "Leading part of the run left "
                   "out of the rate.")
flags.DEFINE_integer("ceiling_repeats", 20, "Learner-only timed steps.")


def _steady_rate(path: str, warmup_fraction: float) -> float:
  with open(path, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r.get("wall_time_s")]
  steps = np.array([float(r["env_steps"]) for r in rows])
  wall = np.array([float(r["wall_time_s"]) for r in rows])
  start = np.searchsorted(steps, steps[-1] * warmup_fraction)
  start = min(start, len(steps) - 2)
  return (steps[-1] - steps[start]) / (wall[-1] - wall[start])


def main(argv):
  del argv
  preset = presets.PRESETS[presets.family(FLAGS.env)]
  unroll = FLAGS.unroll_length or preset.unroll_length
  batch = FLAGS.batch_size or preset.batch_size
  config = dict(preset.config)
  config.pop("end_learning_rate", None)
  spec = runs.RunSpec(agent=FLAGS.agent, env=FLAGS.env,
                      config_overrides=config)
  logdir = tempfile.mkdtemp(prefix="tf_metagrad_throughput_")
  options = loop.Options(
      logdir=logdir, total_env_steps=FLAGS.total_env_steps,
      unroll_length=unroll, batch_size=batch, num_actors=FLAGS.num_actors,
      num_actor_processes=FLAGS.num_actor_processes,
      envs_per_actor=FLAGS.envs_per_actor or preset.envs_per_actor,
      eval_episodes=0, export=False, summary_every_s=1.0, log_every_s=10.0,
      checkpoint_every_s=1e9)
  summary = loop.train(spec, options, log=print)
  rate = _steady_rate(os.path.join(logdir, "metrics.csv"),
                      FLAGS.warmup_fraction)

  learner = runs.build_learner(spec)
  env = runs.make_env(spec)
  item_unroll = loop.item_unroll_length(spec, unroll)
  if not hasattr(env.action_space, "n"):
    raise app.UsageError("benchmarks.throughput measures discrete-action "
                         "environments only.")
  data = common.random_trajectory(
      np.random.default_rng(0), item_unroll, batch,
      env.observation_spec.shape.as_list(), env.observation_spec.dtype.name,
      int(env.action_space.n))
  env.close()
  times = []
  for i in range(FLAGS.ceiling_repeats + 2):
    start = time.perf_counter()
    metrics = learner.step(data)
    float(metrics["inner_loss"])
    if i >= 2:
      times.append(time.perf_counter() - start)
  ceiling = item_unroll * batch / float(np.median(times))
  print(f"run: {summary['env_steps']} env steps, {summary['learner_steps']} "
        f"learner steps; learner-only step {1e3 * np.median(times):.1f} ms "
        f"for {item_unroll} x {batch} frames")
  print(f"env_steps_per_s={rate:.1f} learner_ceiling_steps_per_s="
        f"{ceiling:.1f} ratio={rate / ceiling:.3f}")


if __name__ == "__main__":
  app.run(main)
