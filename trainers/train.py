r"""Trains a meta-gradient agent with Reverb actors and a tf.distribute learner.

  python -m trainers.train --agent=stac --env=catch --logdir=DIR \
      --total_env_steps=N --seed=S

Runs the embedded Reverb server (127.0.0.1, --reverb_port), --num_actors actor
threads and --num_actor_processes actor processes (0 + 0 = only external
actors: `python -m trainers.actor --reverb_address=HOST:PORT ...`), and the
learner on --strategy. Writes TensorBoard summaries, metrics.csv and
checkpoints to DIR; running again on the same DIR resumes. At the end it
exports the greedy policy to DIR/saved_model and prints
`final_eval_mean_return=<float>`.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from trainers import presets

FLAGS = flags.FLAGS

flags.DEFINE_string("agent", "stac",
                    "impala | mgrl | stac | stacx | frodo | drmg")
flags.DEFINE_string("env", "catch", "Environment name, see tf_metagrad.envs.")
flags.DEFINE_string("logdir", None, "Run directory (resumed if it exists). "
                    "Default: runs/<agent>-<env>-seed<seed>.")
flags.DEFINE_integer("total_env_steps", 500_000, "Environment steps to train.")
flags.DEFINE_integer("seed", 0, "Seed of the run.")
flags.DEFINE_enum("preset", "auto", ["auto", "toy", "atari", "dmc"],
                  "Domain defaults (auto: from the env name).")
flags.DEFINE_integer("unroll_length", None, "T of each unroll (FRODO: of "
                     "each of its M+1 trajectories). Default: preset.")
flags.DEFINE_integer("batch_size", None, "Unrolls per learner step "
                     "(global). Default: preset.")
flags.DEFINE_integer("num_actors", 2, "Actor threads in this process.")
flags.DEFINE_integer("num_actor_processes", 0, "Actor processes started "
                     "(and restarted) by this trainer.")
flags.DEFINE_integer("envs_per_actor", None, "Environments stepped together "
                     "by each actor. Default: preset.")
flags.DEFINE_float("learning_rate", None, "Inner learning rate (start).")
flags.DEFINE_float("meta_learning_rate", None, "Meta-optimizer learning rate.")
flags.DEFINE_multi_string("config", [], "Agent config override name=value "
                          "(repeatable), e.g. --config=meta_learned=gamma.")
flags.DEFINE_multi_string("env_kwargs", [], "Environment kwarg name=value.")
flags.DEFINE_integer("reverb_port", None, "Reverb port (default: a free one).")
flags.DEFINE_integer("queue_capacity", None, "Reverb queue size in items, "
                     "each one actor unroll of --envs_per_actor copies "
                     "(default: about 4 learner batches).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "tpu"],
                  "tf.distribute strategy of the learner.")
flags.DEFINE_string("tpu", None, "TPU name for --strategy=tpu.")
flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into this many logical "
                     "devices (e.g. 2 to run --strategy=mirrored on a CPU).")
flags.DEFINE_integer("weights_every", 1, "Learner steps between weight "
                     "publications to actors.")
flags.DEFINE_float("weights_min_interval_secs", 0.1, "Least time between "
                   "two weight publications (each costs a few ms of CPU).")
flags.DEFINE_integer("actor_refresh_every", 1, "Unrolls between actor weight "
                     "refreshes.")
flags.DEFINE_float("log_every_secs", 5.0, "Progress line interval.")
flags.DEFINE_float("summary_every_secs", 10.0, "Summary/CSV interval.")
flags.DEFINE_float("checkpoint_every_secs", 120.0, "Checkpoint interval.")
flags.DEFINE_float("data_timeout_secs", 10.0, "Learner wait for a batch "
                   "before re-checking the actors.")
flags.DEFINE_float("max_data_wait_secs", 600.0, "Fail when no data arrives "
                   "for this long.")
flags.DEFINE_integer("eval_episodes", 20, "Greedy evaluation episodes at the "
                     "end (0: none).")
flags.DEFINE_bool("export", True, "Export DIR/saved_model at the end.")


def _strategy():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if FLAGS.logical_cpus:
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * FLAGS.logical_cpus)
  if FLAGS.strategy == "default":
    return tf.distribute.get_strategy()
  if FLAGS.strategy == "mirrored":
    devices = None
    if FLAGS.logical_cpus:
      devices = [f"/cpu:{i}" for i in range(FLAGS.logical_cpus)]
    return tf.distribute.MirroredStrategy(devices)
  if not FLAGS.tpu:
    raise app.UsageError("--strategy=tpu needs --tpu=NAME.")
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=FLAGS.tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _options_and_spec():
  # Imported here so `--help` and flag errors do not pay for TensorFlow.
  from tf_metagrad import agents  # pylint: disable=g-import-not-at-top
  from tf_metagrad import envs  # pylint: disable=g-import-not-at-top
  from tf_metagrad import runs  # pylint: disable=g-import-not-at-top
  from tf_metagrad.system import server as server_lib  # pylint: disable=g-import-not-at-top
  from trainers import loop  # pylint: disable=g-import-not-at-top
  from trainers import overrides  # pylint: disable=g-import-not-at-top

  if FLAGS.agent not in agents.AGENTS:
    raise app.UsageError(f"--agent={FLAGS.agent!r} is not one of "
                         f"{sorted(agents.AGENTS)}.")
  logdir = FLAGS.logdir or os.path.join(
      "runs", f"{FLAGS.agent}-{FLAGS.env.replace(':', '_')}-seed{FLAGS.seed}")
  if FLAGS.total_env_steps <= 0:
    raise app.UsageError("--total_env_steps must be > 0.")
  preset = presets.PRESETS[presets.family(FLAGS.env)
                           if FLAGS.preset == "auto" else FLAGS.preset]
  unroll = FLAGS.unroll_length or preset.unroll_length
  batch = FLAGS.batch_size or preset.batch_size
  if unroll < 1 or batch < 1:
    raise app.UsageError("--unroll_length and --batch_size must be >= 1.")
  if FLAGS.weights_every < 1:
    raise app.UsageError("--weights_every must be >= 1.")
  if FLAGS.weights_min_interval_secs < 0:
    raise app.UsageError("--weights_min_interval_secs must be >= 0.")
  config = dict(preset.config)
  # Derived, so not part of the run's identity: a resume with another
  # --total_env_steps keeps the stored decay (runs.check_or_save_spec).
  derived = {}
  if preset.decay_learning_rate:
    derived["decay_steps"] = max(1, FLAGS.total_env_steps // (unroll * batch))
  else:
    config.pop("end_learning_rate", None)
  if FLAGS.learning_rate is not None:
    config["learning_rate"] = FLAGS.learning_rate
  if FLAGS.meta_learning_rate is not None:
    config["meta_learning_rate"] = FLAGS.meta_learning_rate
  try:
    config.update(overrides.parse_config(FLAGS.agent, FLAGS.config))
    env_kwargs = overrides.parse_env_kwargs(FLAGS.env_kwargs)
    agents.make_config(FLAGS.agent, **config, **derived)  # Validate early.
    server_lib.queue_capacity(
        batch, FLAGS.envs_per_actor or preset.envs_per_actor,
        FLAGS.queue_capacity)
    envs.make(FLAGS.env, seed=FLAGS.seed, **env_kwargs).close()
  except (ValueError, TypeError) as e:
    raise app.UsageError(str(e)) from None
  spec = runs.RunSpec(agent=FLAGS.agent, env=FLAGS.env,
                      config_overrides=config, env_kwargs=env_kwargs,
                      seed=FLAGS.seed, derived_config=derived)
  options = loop.Options(
      logdir=logdir, total_env_steps=FLAGS.total_env_steps,
      unroll_length=unroll, batch_size=batch, num_actors=FLAGS.num_actors,
      num_actor_processes=FLAGS.num_actor_processes,
      envs_per_actor=FLAGS.envs_per_actor or preset.envs_per_actor,
      reverb_port=FLAGS.reverb_port, queue_capacity=FLAGS.queue_capacity,
      weights_every=FLAGS.weights_every,
      weights_min_interval_s=FLAGS.weights_min_interval_secs,
      actor_refresh_every=FLAGS.actor_refresh_every,
      data_timeout_s=FLAGS.data_timeout_secs,
      max_data_wait_s=FLAGS.max_data_wait_secs,
      log_every_s=FLAGS.log_every_secs,
      summary_every_s=FLAGS.summary_every_secs,
      checkpoint_every_s=FLAGS.checkpoint_every_secs,
      eval_episodes=FLAGS.eval_episodes, export=FLAGS.export)
  return spec, options


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown progress.
  spec, options = _options_and_spec()
  from trainers import loop  # pylint: disable=g-import-not-at-top
  stop = loop.StopFlag()
  stop.install()
  try:
    loop.train(spec, options, strategy=_strategy(), stop=stop,
               log=lambda msg: print(msg, flush=True))
  except RuntimeError as e:
    # RunError (bad run directory) and the loop's own failures (no data,
    # actors failing repeatedly) are one line; other errors keep traces.
    print(f"error: {str(e).splitlines()[0] if str(e) else repr(e)}",
          file=sys.stderr, flush=True)
    return 1
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
