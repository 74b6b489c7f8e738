r"""XLA per replica: compile time and step time of every agent, with and
without `jit_compile`.

Usage:
  python -m benchmarks.xla_compile [--agents=impala,stac] [--network=mlp] \
      [--batch_size=8] [--unroll_length=12] [--frodo_inner_steps=5] [--tiny]

For each agent, builds a plain learner and a `jit_compile=True` learner (the
replica step compiled with XLA, see `tf_metagrad.distribute.xla`) on the same
random batch (batch size 8 and 5 repeats unless given). The first call of each is timed alone: tracing for both, plus
XLA's compilation for the second, so `compile_s` = first XLA call - first
plain call estimates the compilation. Then `--repeats` steps of each are
timed in turns after one untimed warm-up. Nothing is asserted; the last line
per agent is machine-readable:
  agent=A first_plain_s=.. first_xla_s=.. compile_s=.. step_ms=..
  xla_step_ms=.. xla_ratio=<xla/plain>
"""

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from benchmarks import learner_step
from tf_metagrad import agents

_AGENTS = flags.DEFINE_list("agents", sorted(agents.AGENTS),
                            "Agents to measure.")
# --network, --batch_size, --unroll_length, --repeats, --frodo_inner_steps,
# --head_hidden_sizes and --tiny are benchmarks.learner_step's flags (defined when it is
# imported), with the same meaning.
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  unknown = sorted(set(_AGENTS.value) - set(agents.AGENTS))
  if unknown:
    raise app.UsageError(f"--agents has unknown names {unknown}; allowed: "
                         f"{sorted(agents.AGENTS)}.")
  network, unroll = FLAGS.network, FLAGS.unroll_length
  inner_steps = FLAGS.frodo_inner_steps
  batch_size = FLAGS.batch_size or 8
  repeats = FLAGS.repeats or 5
  if "frodo" in _AGENTS.value and unroll % (inner_steps + 1):
    raise app.UsageError(
        f"--unroll_length must be divisible by --frodo_inner_steps + 1 = "
        f"{inner_steps + 1}, got {unroll}.")
  shape, dtype, num_actions, _ = common.NETWORKS[network]
  batch = common.random_trajectory(np.random.default_rng(0), unroll,
                                   batch_size, shape, dtype,
                                   num_actions)
  print(f"network={network} batch_size={batch_size} "
        f"unroll_length={unroll} frodo_inner_steps={inner_steps} "
        f"repeats={repeats} head_hidden_sizes={FLAGS.head_hidden_sizes} "
        f"tiny={FLAGS.tiny}", flush=True)
  for agent in _AGENTS.value:
    learners = {
        name: common.build_learner(
            agent, network, jit, seed=0, tiny=FLAGS.tiny,
            frodo_inner_steps=inner_steps,
            head_hidden_sizes=learner_step.head_hidden_sizes())
        for name, jit in (("plain", False), ("xla", True))}
    calls = {name: lambda l=l: l.step(batch)["inner_loss"]
             for name, l in learners.items()}
    first = {name: common.timed_call(fn) for name, fn in calls.items()}
    times = common.interleaved_times(calls, 1, repeats)
    plain_ms = common.summary_ms(times["plain"])[0]
    xla_ms = common.summary_ms(times["xla"])[0]
    print(f"agent={agent} first_plain_s={first['plain']:.2f} "
          f"first_xla_s={first['xla']:.2f} "
          f"compile_s={first['xla'] - first['plain']:.2f} "
          f"step_ms={plain_ms:.2f} xla_step_ms={xla_ms:.2f} "
          f"xla_ratio={xla_ms / plain_ms:.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
