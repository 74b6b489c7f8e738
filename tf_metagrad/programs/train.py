r"""Trains a meta-gradient agent with Reverb actors and a tf.distribute learner.

  python -m trainers.train --agent=stac --env=catch --logdir=DIR \
      --total_env_steps=N --seed=S

Runs the embedded Reverb server (127.0.0.1, --reverb_port), --num_actors actor
threads and --num_actor_processes actor processes (0 + 0 = only external
actors: `python -m trainers.actor --reverb_address=HOST:PORT ...`), and the
learner on --strategy. Writes TensorBoard events files, the metric rows
(DIR/metrics/, read with tf_metagrad.training.outputs.read_metrics) and checkpoints to
DIR; running again on the same DIR resumes. At the end it
exports the greedy policy to DIR/saved_model and prints
`final_eval_mean_return=<float>`.

Exit codes: 0 for a completed run (or one already complete), 1 with one
line on stderr for a bad flag or a failed run, and after SIGINT or SIGTERM,
once the run is checkpointed, 130 or 143 (128 + the signal's number, as a
shell reports a process the signal ended), so that `train && next` stops
there; the same command resumes the run. A session that made no learner
step leaves a new run directory as it found it.
"""

import os
import signal
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from tf_metagrad.programs import cli
from tf_metagrad.programs import flags_check
from tf_metagrad.training import options as options_lib

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
flags.DEFINE_integer("unroll_stride", None, "Steps between an actor's "
                     "consecutive unrolls, in [1, unroll length]: each "
                     "holds the last T steps, so consecutive ones overlap by "
                     "T - stride, and a learner step counts stride x batch "
                     "env steps. Default: the preset's (dmc: 10, STAC's "
                     "overlap 30 of 40; at most the unroll length), else T.")
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
flags.DEFINE_enum("strategy", "default",
                  ["default", "mirrored", "tpu", "multi_worker"],
                  "tf.distribute strategy of the learner; multi_worker reads "
                  "the cluster from TF_CONFIG (one trainer per worker).")
flags.DEFINE_float(
    "worker_timeout_secs", 600.0, "--strategy=multi_worker: how long the "
    "workers wait for each other to start; a dead worker is noticed within "
    "about 10 s (heartbeats), and collectives have no timeout of their own.")
flags.DEFINE_string("tpu", None, "TPU for --strategy=tpu: its name or "
                    "grpc:// address, or 'local' on a Cloud TPU VM.")
flags.DEFINE_integer("logical_cpus", 0, "With --strategy=mirrored: split the "
                     "CPU into this many logical devices, one replica each "
                     "(e.g. 2 to try a Mirrored learner on a CPU).")
flags.DEFINE_integer("inter_op_threads", 0, "Threads that run independent "
                     "TF ops side by side (0: TF's default, one per core).")
flags.DEFINE_integer("intra_op_threads", 0, "Threads that split one TF op "
                     "(0: TF's default, one per core); 1 made MLP learner "
                     "steps faster on 2 cores, see docs/PERFORMANCE.md.")
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
flags.DEFINE_integer("eval_every_env_steps", 0, "Greedy evaluation "
                     "(--eval_episodes episodes) of a weight snapshot each "
                     "time this many env steps pass, in a background thread "
                     "(0: only at the end).")
flags.DEFINE_integer("steps_per_call", 1, "Learner steps per tf.function "
                     "call (one host round trip per call).")
flags.DEFINE_integer("actor_nice", 0, "Lower the CPU priority of the "
                     "--num_actor_processes by this much (nice(1)'s scale, "
                     "0-19), so that the learner gets the cores first when "
                     "both want them.")

_PRESET = "the preset's value"
cli.register({
    "agent": flags_check.agent_rule(),
    "total_env_steps": cli.integer(1),
    "seed": cli.integer(0, flags_check.LEARNER_SEED_MAX),
    "unroll_length": cli.integer(1, unset=_PRESET),
    "unroll_stride": cli.integer(1, unset=_PRESET),
    "batch_size": cli.integer(1, unset=_PRESET),
    "num_actors": cli.integer(0),
    "num_actor_processes": cli.integer(0),
    "envs_per_actor": cli.integer(1, unset=_PRESET),
    "learning_rate": cli.number(0, inclusive=False, unset=_PRESET),
    "meta_learning_rate": cli.number(0, inclusive=False, unset=_PRESET),
    "reverb_port": cli.integer(1, 65535, unset="a free port"),
    "queue_capacity": cli.integer(1, unset="about 4 learner batches"),
    "logical_cpus": cli.integer(0),
    "inter_op_threads": cli.integer(0),
    "intra_op_threads": cli.integer(0),
    "weights_every": cli.integer(1),
    "weights_min_interval_secs": cli.number(0),
    "actor_refresh_every": cli.integer(1),
    "log_every_secs": cli.number(0, allow_inf=True),
    "summary_every_secs": cli.number(0, allow_inf=True),
    "checkpoint_every_secs": cli.number(0, allow_inf=True),
    # Handed to Reverb as whole milliseconds.
    "data_timeout_secs": cli.number(0.001),
    "max_data_wait_secs": cli.number(0, inclusive=False, allow_inf=True),
    "eval_episodes": cli.integer(0),
    "steps_per_call": cli.integer(1),
    "actor_nice": cli.integer(0, 19),
    "eval_every_env_steps": cli.integer(0),
    "worker_timeout_secs": cli.number(1),
})


# The options the flags set as they are, by their `Options` field names.
_OPTION_FLAGS = (
    "num_actors", "num_actor_processes", "reverb_port", "queue_capacity",
    "weights_every", "weights_min_interval_s", "actor_refresh_every",
    "data_timeout_s", "max_data_wait_s", "log_every_s", "summary_every_s",
    "checkpoint_every_s", "eval_episodes", "export", "steps_per_call",
    "eval_every_env_steps", "actor_nice")


def _flag_name(option: str) -> str:
  """The flag of an `Options` field (data_timeout_s: data_timeout_secs)."""
  return option[:-2] + "_secs" if option.endswith("_s") else option


def _option_values():
  """The values of `_OPTION_FLAGS`, by field name."""
  return {option: FLAGS[_flag_name(option)].value
          for option in _OPTION_FLAGS}


def _named_by_flags(error: options_lib.OptionError) -> cli.FlagError:
  return cli.FlagError(error.describe(lambda o: "--" + _flag_name(o)))


def _check_before_tensorflow() -> str:
  """Checks the flags that need no library; returns the run directory."""
  if FLAGS.strategy == "tpu" and not FLAGS.tpu:
    raise cli.FlagError("--strategy=tpu: expected --tpu=NAME too "
                        "(--tpu=local on a Cloud TPU VM)")
  if FLAGS.tpu and FLAGS.strategy != "tpu":
    raise cli.FlagError(f"--tpu={FLAGS.tpu}: expected only with "
                        f"--strategy=tpu, got --strategy={FLAGS.strategy}")
  if FLAGS.logical_cpus and FLAGS.strategy != "mirrored":
    raise cli.FlagError(f"--logical_cpus={FLAGS.logical_cpus}: expected "
                        f"only with --strategy=mirrored (its replicas are "
                        f"the logical CPUs), got --strategy={FLAGS.strategy}")
  try:
    options_lib.check(_option_values())
  except options_lib.OptionError as e:
    raise _named_by_flags(e) from None
  if FLAGS.logdir == "":  # pylint: disable=g-explicit-bool-comparison
    raise cli.FlagError("--logdir='': expected a directory path")
  logdir = FLAGS.logdir or os.path.join(
      "runs", f"{FLAGS.agent}-{FLAGS.env.replace(':', '_')}-seed{FLAGS.seed}")
  cli.writable_dir("logdir", logdir)
  if FLAGS.reverb_port is not None:
    flags_check.free_port("reverb_port", FLAGS.reverb_port)
  return logdir


def _options_and_spec():
  """(run spec, session options) from the flags; raises FlagError first."""
  logdir = _check_before_tensorflow()
  # Imported here so `--help` and flag errors do not pay for TensorFlow.
  # pylint: disable=g-import-not-at-top
  from tf_metagrad import runs
  from tf_metagrad.agents import config as config_lib
  from tf_metagrad.training import resolve
  # pylint: enable=g-import-not-at-top
  config = {name: FLAGS[name].value
            for name in ("learning_rate", "meta_learning_rate")
            if FLAGS[name].value is not None}
  config.update(flags_check.config_overrides(FLAGS.agent, FLAGS.config))
  env_kwargs = flags_check.environment(FLAGS.env, FLAGS.env_kwargs,
                                       FLAGS.seed)
  try:
    spec, options = resolve.resolve(
        FLAGS.agent, FLAGS.env, logdir, FLAGS.total_env_steps,
        preset=FLAGS.preset, seed=FLAGS.seed, config_overrides=config,
        env_kwargs=env_kwargs, unroll_length=FLAGS.unroll_length,
        batch_size=FLAGS.batch_size, envs_per_actor=FLAGS.envs_per_actor,
        unroll_stride=FLAGS.unroll_stride, **_option_values())
  except resolve.ConfigError as e:
    raise flags_check.config_error(FLAGS.config, e) from None
  except options_lib.OptionError as e:
    raise _named_by_flags(e) from None
  if FLAGS.strategy == "tpu":
    # Before the TPU system is initialised, which takes a while.
    dtype = runs.agent_config(spec).dtype
    try:
      config_lib.check_tpu_dtype(dtype)
    except ValueError as e:
      raise cli.FlagError(f"--config=dtype={dtype} with --strategy=tpu: "
                          f"{e}") from None
  return spec, options


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown progress.
  spec, options = _options_and_spec()
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.distribute import strategies
  from tf_metagrad.training import loop
  from tf_metagrad.training import stop_flag
  # pylint: enable=g-import-not-at-top
  try:
    strategies.configure_threads(FLAGS.inter_op_threads,
                                 FLAGS.intra_op_threads)
  except ValueError as e:
    raise cli.FlagError(
        f"--inter_op_threads/--intra_op_threads: {e}") from None
  # Before the strategy initialises the GPUs; actor processes see none
  # (actor_pool), actor threads and evaluations run on the CPU.
  strategies.enable_memory_growth()
  try:
    strategy = strategies.make(FLAGS.strategy, FLAGS.tpu, FLAGS.logical_cpus,
                               FLAGS.worker_timeout_secs,
                               log=lambda line: print(line, flush=True))
  except ValueError as e:
    raise cli.FlagError(f"--strategy={FLAGS.strategy}: {e}") from None
  replicas = strategy.num_replicas_in_sync
  if options.batch_size % replicas:
    # Checked here, before loop.train creates the run directory; the
    # dataset would only fail after it.
    raise cli.FlagError(
        f"--batch_size={options.batch_size}: expected a multiple of the "
        f"{replicas} replicas of --strategy={FLAGS.strategy}")
  from tf_metagrad import runs  # pylint: disable=g-import-not-at-top
  from tf_metagrad.distribute import xla  # pylint: disable=g-import-not-at-top
  try:
    xla.check_jit_compile(strategy, runs.agent_config(spec).jit_compile)
  except ValueError as e:
    raise cli.FlagError(f"--config=jit_compile=true with --strategy="
                        f"{FLAGS.strategy}: {e}") from None
  stop = stop_flag.StopFlag()
  stop.install()
  try:
    summary = loop.train(spec, options, strategy=strategy, stop=stop,
                         log=lambda msg: print(msg, flush=True))
  except RuntimeError as e:
    # RunError (bad run directory) and the loop's own failures (no data,
    # actors failing repeatedly) are one line; other errors keep traces.
    print(f"error: {str(e).splitlines()[0] if str(e) else repr(e)}",
          file=sys.stderr, flush=True)
    return 1
  if summary["status"].startswith("stopped"):
    # A worker of a multi-worker run stopped by another one's signal was
    # preempted all the same.
    return 128 + (stop.signum or signal.SIGTERM)
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.programs.scripts`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
