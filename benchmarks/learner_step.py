r"""Speed of one learner step of a meta-gradient agent relative to IMPALA.

Usage:
  python -m benchmarks.learner_step --agent=stac --network=resnet \
      --batch_size=8 --unroll_length=20 [--jit_compile]

Builds the agent's learner and an IMPALA learner on the same network and the
same random batch, runs `--warmup` untimed steps of each (the first traces
the tf.function), then `--repeats` timed steps of each, taking turns. A step
is timed from the call to the moment one of its metrics is read on the host;
the batch is checked on the host once, not at every call (`Learner.step`'s
`check`), as in the training loop.
Networks:
  resnet: 84x84x4 uint8 frames, 18 actions, the IMPALA deep ResNet torso;
  mlp: 64-dim float32 features, 6 actions, a (256, 256) MLP torso;
  conv: 84x84x3 uint8 pixels, 6 actions, the DM Control pixel torso (STAC
    Table 2's residual conv torso, `ConvTorso`).

Each learner's line also gives `cpu_ms`, the process CPU time per step
(all threads) over `--repeats` more steps: what a step takes from actors
sharing the machine.
The last line printed is machine-readable:
  agent=A network=N step_ms=<median> impala_step_ms=<median> ratio=<A/IMPALA>
  peak_rss_mb=<peak RSS of the whole process (both learners)>

FRODO splits the unroll into num_inner_steps + 1 consecutive segments (see
`tf_metagrad.agents.frodo`), so --unroll_length must be divisible by
--frodo_inner_steps + 1; IMPALA still steps on the whole unroll.
"""

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from tf_metagrad import agents

_DEFAULT_REPEATS = {"mlp": 10, "resnet": 3, "conv": 3}

_AGENT = flags.DEFINE_enum("agent", "stac", sorted(agents.AGENTS),
                           "Agent whose learner step is measured.")
_NETWORK = flags.DEFINE_enum("network", "mlp", sorted(common.NETWORKS),
                             "Agent network (see the module docstring).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Trajectories per batch (default: 32 for mlp, 8 for "
    "resnet).", lower_bound=1)
_UNROLL_LENGTH = flags.DEFINE_integer("unroll_length", 20,
                                      "Unroll length T.", lower_bound=1)
_JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", False, "Compile both learner steps with XLA.")
_WARMUP = flags.DEFINE_integer(
    "warmup", 2, "Untimed steps per learner before timing (the first one "
    "traces, so at least 1).", lower_bound=1)
_REPEATS = flags.DEFINE_integer(
    "repeats", None, "Timed steps per learner (default: 10 for mlp, 3 for "
    "resnet).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the network and the batch.")
_FRODO_INNER_STEPS = flags.DEFINE_integer(
    "frodo_inner_steps", 1, "FRODO's num_inner_steps M; the unroll is cut "
    "into M + 1 segments.", lower_bound=1)
_HEAD_HIDDEN_SIZES = common.define_head_flag()
_THREADS = common.define_thread_flags()
_COMPUTE_DTYPE = common.define_compute_dtype_flag()
_TINY = flags.DEFINE_boolean(
    "tiny", False, "8-unit layers (4-channel ResNet): for smoke tests only, "
    "not a meaningful measurement.")


def head_hidden_sizes():
  """`--head_hidden_sizes` as a tuple of ints (() linear), None if unset."""
  return common.head_hidden_sizes(_HEAD_HIDDEN_SIZES)


def _step_call(learner, batch):
  # One checked (and tracing) call; the warm-up and timed calls then run the
  # step as the training loop does, without the host-side batch checks.
  learner.step(batch)
  return lambda: learner.step(batch, check=False)["inner_loss"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  threads = common.configure_threads(_THREADS)
  agent, network = _AGENT.value, _NETWORK.value
  batch_size = _BATCH_SIZE.value or common.DEFAULT_BATCH_SIZE[network]
  repeats = _REPEATS.value or _DEFAULT_REPEATS[network]
  unroll = _UNROLL_LENGTH.value
  inner_steps = _FRODO_INNER_STEPS.value
  if agent == "frodo" and unroll % (inner_steps + 1):
    raise app.UsageError(
        f"--unroll_length must be divisible by --frodo_inner_steps + 1 = "
        f"{inner_steps + 1} for agent=frodo, got {unroll}.")

  shape, dtype, num_actions, _ = common.NETWORKS[network]
  batch = common.random_trajectory(np.random.default_rng(_SEED.value),
                                   unroll, batch_size, shape, dtype,
                                   num_actions)
  heads = head_hidden_sizes()
  names = ["impala"] if agent == "impala" else [agent, "impala"]
  learners = {
      name: common.build_learner(
          name, network, _JIT_COMPILE.value, _SEED.value, tiny=_TINY.value,
          frodo_inner_steps=inner_steps, head_hidden_sizes=heads,
          compute_dtype=_COMPUTE_DTYPE.value)
      for name in names}
  net = learners[agent].network
  extra = f" frodo_inner_steps={inner_steps}" if agent == "frodo" else ""
  print(f"network={network} torso={net.torso_kind} "
        f"mlp_hidden_sizes={net.mlp_hidden_sizes} "
        f"head_hidden_sizes={net.head_hidden_sizes} "
        f"compute_dtype={net.compute_dtype} "
        f"batch_size={batch_size} unroll_length={unroll} "
        f"frames_per_step={(unroll + 1) * batch_size} "
        f"jit_compile={_JIT_COMPILE.value} warmup={_WARMUP.value} "
        f"repeats={repeats} tiny={_TINY.value} {threads}{extra}",
        flush=True)

  calls = {name: _step_call(learner, batch)
           for name, learner in learners.items()}
  times = common.interleaved_times(calls, _WARMUP.value, repeats)
  medians = {}
  for name, learner in learners.items():
    median, low, high = common.summary_ms(times[name])
    medians[name] = median
    cpu_ms = common.cpu_ms_per_call(calls[name], repeats)
    # More than one trace would mean retracing was timed as well.
    step_fn = learner._step_fn  # pylint: disable=protected-access
    traces = step_fn.experimental_get_tracing_count()
    print(f"{name}: median_ms={median:.3f} min_ms={low:.3f} "
          f"max_ms={high:.3f} cpu_ms={cpu_ms:.3f} traces={traces}",
          flush=True)
  step_ms, impala_ms = medians[agent], medians["impala"]
  print(f"agent={agent} network={network} step_ms={step_ms:.3f} "
        f"impala_step_ms={impala_ms:.3f} ratio={step_ms / impala_ms:.3f} "
        f"peak_rss_mb={common.peak_rss_mb():.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
