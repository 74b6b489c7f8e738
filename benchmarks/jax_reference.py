r"""Our learner step next to an XLA-compiled JAX step doing the same work
(issue #16).

Usage (JAX lives in a venv of its own, see benchmarks/jax_requirements.txt):
  python3.11 -m venv /work/jaxvenv
  /work/jaxvenv/bin/pip install -r benchmarks/jax_requirements.txt
  python -m benchmarks.jax_reference --jax_python=/work/jaxvenv/bin/python \
      [--network=mlp|resnet] [--agent=both|stac|impala] [--batch_size=32] \
      [--unroll_length=20] [--repeats=10] [--warmup=2]
(or set TF_METAGRAD_JAX_PYTHON instead of --jax_python).

Runs from our venv (TF side). It builds the IMPALA and STAC learners as
`benchmarks.learner_step` does, with linear heads (`--head_hidden_sizes=`,
the IMPALA network) on the "mlp" or "resnet" network, on the same
`common.random_trajectory` batch. Each learner first takes `--check_steps`
steps on another random batch, so that RMSProp's mean squares and Adam's
moments and count are not at their zero start; its state, then one step on
the benchmark batch, and its state after that step go into a temporary .npz
(np.savez, read with allow_pickle=False), together with the batch and the
config's hyperparameters.

`benchmarks/jax_reference_worker.py` (numpy and jax only) then runs under
the JAX python: one jitted JAX step per agent from that state must give the
TF state after the step (parameters, RMSProp mean squares, eta, Adam moments
by their change from the old state, within `--tolerance` relative to the
size of that change, Adam's count exactly, and the inner and outer losses
and the inner gradient norm; the worker's docstring says what it computes,
what it leaves out, and why the tolerance is 1e-4 for the MLP and 1e-2 for
the ResNet), or everything stops with one FAILED line. The first worker run
also prints how far each side's float32 step is from the JAX step in
float64 (`--float64_reference`). Then it times the JAX steps. The order, to limit drift on a shared
machine, is: JAX timing, TF timing (`common.interleaved_times`, the agents
taking turns, a step timed up to reading its inner loss on the host, as in
`benchmarks.learner_step`), JAX timing again in a second worker process;
the JAX median is that of both runs' steps. The JAX compile time is the
first call minus the median step (first worker run).

The last line is machine-readable:
  network=N agent=stac tf_step_ms=.. jax_step_ms=.. tf_over_jax=..
  impala_tf_ms=.. impala_jax_ms=.. impala_tf_over_jax=..
  jax_stac_over_impala=.. jax_compile_s=<stac>,<impala> max_rel_diff=..
  jax_version=..
where max_rel_diff is the largest same-work difference over both worker
runs, agents and groups, without the 2-ulp slack.
(`agent=` names the meta agent; with --agent=impala only the impala_ fields
are printed, with --agent=stac only the STAC ones).

Measured on 2026-11-27 (2 shared cores, another benchmark running; jax
0.10.2, TF 2.15.1 without jit_compile; medians):
  mlp B=32 T=20, 50 repeats: STAC TF 12.9 ms, JAX 12.3 ms (TF/JAX 1.05);
    IMPALA 6.35 ms vs 4.83 ms (1.32); XLA compile 6.3 s and 2.3 s.
  resnet B=8 T=20, 5 repeats: STAC 1492 ms vs 4742 ms (0.31); IMPALA
    503 ms vs 2206 ms (0.23); compile 12 s and 4.6 s. XLA:CPU's
    convolutions are the cost here, as for TF's own jit_compile
    (`distribute.xla.resolve_jit_compile`: IMPALA 2028 vs 338 ms).
Those TF times include `learner.step`'s host-side batch checks (0.5-0.8 ms
of the MLP steps), which the timed calls now skip (`check=False`), as the
training loop does.

Why two processes: installing the newest JAX (0.10.2) into our venv would
replace numpy 1.26.4 by 2.4.6 and ml_dtypes 0.3.2 by 0.6.0 (pip's dry run),
which TF 2.15 cannot use. jax 0.4.30 would install beside TF 2.15 without
changing either, but its XLA is from mid-2024, and a second XLA runtime
with its own thread pool in the TF process would blur both timings.
"""

import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

from benchmarks import common
from benchmarks import jax_reference_case as case_lib

_AGENT = flags.DEFINE_enum("agent", "both", ["both", "stac", "impala"],
                           "Learner step(s) to compare.")
_NETWORK = flags.DEFINE_enum("network", "mlp",
                             case_lib.NETWORKS,
                             "Agent network, as in benchmarks.learner_step "
                             "with --head_hidden_sizes= (linear heads).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Trajectories per batch (default: 32 for mlp, 8 for "
    "resnet).", lower_bound=1)
_UNROLL_LENGTH = flags.DEFINE_integer("unroll_length", 20, "Unroll length T.",
                                      lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per learner and "
                               "side before timing.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed steps per learner on "
                                "the TF side and in each JAX run.",
                                lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the network and the batch.")
_CHECK_STEPS = flags.DEFINE_integer(
    "check_steps", 2, "TF steps on another batch before the compared step "
    "(0: compare the very first step, whose optimizer states are zero).",
    lower_bound=0)
_TOLERANCE = flags.DEFINE_float(
    "tolerance", None, "Largest relative difference beyond rounding that "
    "the same-work check allows (default: the worker's, 1e-4 for mlp and "
    "3e-2 for resnet; see its docstring).")
_FLOAT64_REFERENCE = flags.DEFINE_boolean(
    "float64_reference", True, "In the first JAX run, also print how far "
    "TF's and JAX's float32 steps are from a float64 JAX step.")
_JAX_PYTHON = flags.DEFINE_string(
    "jax_python", None,
    f"Python with jax installed (default: ${case_lib.JAX_PYTHON_ENV}).")
_TIMEOUT = flags.DEFINE_integer(
    "timeout_s", 1800, "Limit of each worker process, in seconds.",
    lower_bound=1)
_TINY = flags.DEFINE_boolean(
    "tiny", False, "8-unit layers (4-channel ResNet): for smoke tests only.")
_THREADS = common.define_thread_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  try:
    python = case_lib.jax_python(_JAX_PYTHON.value)
  except ValueError as e:
    sys.exit(str(e))
  threads = common.configure_threads(_THREADS)
  network, agents = _NETWORK.value, case_lib.agent_names(_AGENT.value)
  batch_size = _BATCH_SIZE.value or common.DEFAULT_BATCH_SIZE[network]
  unroll, repeats, warmup = (_UNROLL_LENGTH.value, _REPEATS.value,
                             _WARMUP.value)
  shape, dtype, num_actions, _ = common.NETWORKS[network]
  batch = common.random_trajectory(np.random.default_rng(_SEED.value),
                                   unroll, batch_size, shape, dtype,
                                   num_actions)
  warm_batch = common.random_trajectory(
      np.random.default_rng(_SEED.value + 1), unroll, batch_size, shape,
      dtype, num_actions)
  learners = {name: common.build_learner(name, network, False, _SEED.value,
                                         tiny=_TINY.value,
                                         head_hidden_sizes=())
              for name in agents}
  print(f"network={network} agents={','.join(agents)} "
        f"batch_size={batch_size} unroll_length={unroll} warmup={warmup} "
        f"repeats={repeats} check_steps={_CHECK_STEPS.value} "
        f"tiny={_TINY.value} {threads}", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    case = os.path.join(tmp, "case.npz")
    case_lib.export_case(learners, batch, warm_batch, _CHECK_STEPS.value,
                         case)

    def run(float64_reference):
      return case_lib.run_worker(python, case, agents, repeats, warmup,
                                 _TIMEOUT.value, _TOLERANCE.value,
                                 float64_reference)

    try:
      first = run(_FLOAT64_REFERENCE.value)
      # export_case stepped each learner on `batch` with the host checks;
      # the timed steps skip them, as the training loop does.
      times = common.interleaved_times(
          {name: (lambda l=l: l.step(batch, check=False)["inner_loss"])
           for name, l in learners.items()}, warmup, repeats)
      tf_ms = {}
      for name in agents:
        median, low, high = common.summary_ms(times[name])
        tf_ms[name] = median
        print(f"tf agent={name} median_ms={median:.3f} min_ms={low:.3f} "
              f"max_ms={high:.3f}", flush=True)
      second = run(False)
    except RuntimeError as e:
      print(e, flush=True)
      sys.exit(1)
  jax_ms, compile_s = {}, {}
  for name in agents:
    both = first["agents"][name]["times_ms"] + second["agents"][name][
        "times_ms"]
    jax_ms[name] = float(np.median(both))
    compile_s[name] = first["agents"][name]["compile_s"]
  max_diff = max(r["agents"][a]["max_rel_diff"] for r in (first, second)
                 for a in agents)
  print(case_lib.summary_line(network, agents, tf_ms, jax_ms, compile_s,
                              max_diff, first["jax_version"]), flush=True)


if __name__ == "__main__":
  app.run(main)
