r"""What a learner call asks of a device: programs, reductions, shapes.

Usage:
  python -m benchmarks.device_programs --agent=stac --steps_per_call=4
  python -m benchmarks.device_programs --agent=stac --network=resnet \
      --baseline=/tmp/old_checkout --repeats=5

No TPU reaches this machine, so `benchmarks.xla_run.XlaRunStrategy` does on
CPU what TPUStrategy does: it compiles each function the learner gives to
`strategy.run` with `jit_compile=True`, records the shapes of its inputs and
outputs in the traced graph (a TPU program needs them static) and counts, in
the graph, how often `run` (a device program) and `reduce` (a transfer to
the host) execute.

The first line printed is for one `steps_from_iterator` call of N steps
with the trainer's own arguments (`num_steps` a runtime tensor, `max_steps`
the steps per call):
  this: ... programs_per_call=<strategy.run executions>
  reductions_per_call=<...> dynamic_shapes=<functions with a dynamic input
  or output shape>

With `--baseline=DIR` (a checkout of an earlier commit, e.g. made by
`git worktree add DIR REV`) a second line gives the same counts for that
code base (`baseline: ...`), and it then times that learner call in the two
code bases, each in a worker process of its own, taking turns `--repeats`
times, and prints the median call time of each and their ratio
(this/baseline):
  network=N steps=S call_ms=<this> baseline_call_ms=<baseline> ratio=<...>
"""

from absl import app
from absl import flags

from benchmarks import xla_run

_AGENT = flags.DEFINE_string("agent", "stac", "Agent of the learner.")
_NETWORK = flags.DEFINE_enum("network", "mlp", sorted(xla_run.NETWORKS),
                             "mlp: Catch's; resnet: Atari's.")
_STEPS = flags.DEFINE_integer("steps_per_call", 4, "Learner steps per call.",
                              lower_bound=1)
_BASELINE = flags.DEFINE_string(
    "baseline", None, "A checkout of another commit to time against.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Turns of each code base.",
                                lower_bound=1)
_CALLS = flags.DEFINE_integer("calls", None, "Learner calls per turn "
                              "(default: 20 for mlp, 2 for resnet).",
                              lower_bound=1)


def main(argv):
  del argv
  counts = {"this": xla_run.count(_AGENT.value, _NETWORK.value,
                                  _STEPS.value, {})}
  if _BASELINE.value:
    counts["baseline"] = xla_run.count_in(_BASELINE.value, _AGENT.value,
                                          _NETWORK.value, _STEPS.value)
  for name, counted in counts.items():
    print(f"{name}: agent={_AGENT.value} network={_NETWORK.value} "
          f"steps={_STEPS.value} programs_per_call={counted['programs']} "
          f"reductions_per_call={counted['reductions']} "
          f"dynamic_shapes={len(counted['dynamic'])}")
    for line in counted["dynamic"]:
      print(f"  dynamic: {line}")
  if _BASELINE.value:
    calls = _CALLS.value or {"mlp": 20, "resnet": 2}[_NETWORK.value]
    this, baseline = xla_run.interleaved_call_ms(
        _BASELINE.value, _AGENT.value, _NETWORK.value, _STEPS.value,
        _REPEATS.value, calls)
    print(f"network={_NETWORK.value} steps={_STEPS.value} "
          f"call_ms={this:.2f} baseline_call_ms={baseline:.2f} "
          f"ratio={this / baseline:.3f}")


if __name__ == "__main__":
  app.run(main)
