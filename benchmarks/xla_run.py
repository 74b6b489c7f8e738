"""What TPUStrategy would compile and launch, on CPU (no flags here).

On a TPU, every function given to `strategy.run` is compiled with XLA into
one device program, launched once per `strategy.run` execution, and every
`strategy.reduce` of per-replica values is a transfer to the host.
`XlaRunStrategy` does on CPU what TPUStrategy does to those functions, and
counts them; `trainer_batches` gives a learner and the elements the
trainer's input pipeline yields for it. Used by `benchmarks.device_programs`
and `tests/agents/test_device_programs.py`; the timing workers of
`interleaved_call_ms` import `tf_metagrad` from the code base they measure,
so this module imports it only inside functions.
"""

import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class XlaRunStrategy:
  """A strategy whose `run` XLA-compiles its function, as TPUStrategy does.

  Everything but `run` and `reduce` is the wrapped strategy's. `run` gives
  `fn` to the wrapped strategy as a `tf.function(jit_compile=True)`, keeps
  the traced function's input and output shapes in `compiled`, and adds to
  `runs` (a variable) in the calling graph, so that `runs` counts the
  executions of compiled programs, loops included. `reduce` does the same
  with `reductions`.

  Args:
    strategy: the strategy to wrap (default: the default strategy).
  """

  def __init__(self, strategy: Optional[tf.distribute.Strategy] = None
               ) -> None:
    self._strategy = strategy or tf.distribute.get_strategy()
    self.compiled: List[Tuple[str, List[tf.TensorShape],
                              List[tf.TensorShape]]] = []
    self.runs = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.reductions = tf.Variable(0, dtype=tf.int64, trainable=False)

  def __getattr__(self, name: str) -> Any:
    return getattr(self._strategy, name)

  def run(self, fn: Callable[..., Any], args: Sequence[Any] = (),
          kwargs: Optional[Dict[str, Any]] = None) -> Any:
    compiled = tf.function(fn, jit_compile=True, autograph=False)
    concrete = compiled.get_concrete_function(*args, **(kwargs or {}))
    self.compiled.append((
        getattr(fn, "__name__", repr(fn)),
        [t.shape for t in concrete.inputs],
        [t.shape for t in tf.nest.flatten(concrete.outputs)]))
    result = self._strategy.run(compiled, args=args, kwargs=kwargs)
    with tf.control_dependencies(self._local_tensors(result)):
      self.runs.assign_add(1)
    return result

  def reduce(self, reduce_op: tf.distribute.ReduceOp, value: Any,
             axis: Optional[int]) -> Any:
    result = self._strategy.reduce(reduce_op, value, axis=axis)
    with tf.control_dependencies(tf.nest.flatten(result)):
      self.reductions.assign_add(1)
    return result

  def _local_tensors(self, nest):
    return [t for v in tf.nest.flatten(nest)
            for t in self._strategy.experimental_local_results(v)]

  def dynamic(self) -> List[str]:
    """The compiled functions with an input or output of dynamic shape."""
    return [f"{name}: inputs {inputs}, outputs {outputs}"
            for name, inputs, outputs in self.compiled
            if not all(s.is_fully_defined() for s in inputs + outputs)]


def trainer_batches(spec, strategy) -> Tuple[Any, tf.data.Dataset]:
  """The learner of `spec` on `strategy` and a dataset of the elements the
  trainer's input pipeline yields for it (zeros of the same structure,
  shapes and dtypes, from `system.items`)."""
  # Late imports: the benchmark's worker imports these from the code base
  # it measures (see `_worker`).
  from tf_metagrad import runs  # pylint: disable=g-import-not-at-top
  from tf_metagrad.system import items  # pylint: disable=g-import-not-at-top
  learner = runs.build_learner(spec, strategy=strategy)
  env = runs.make_env(spec)
  try:
    obs_spec, action_space = env.observation_spec, env.action_space
  finally:
    env.close()
  if hasattr(runs, "item_unroll_length"):
    unroll = runs.item_unroll_length(spec, spec.unroll_length)
  else:  # A baseline from before 2026-12-07 kept it in the trainer's loop.
    from tf_metagrad.trainers import loop  # pylint: disable=g-import-not-at-top
    unroll = loop.item_unroll_length(spec, spec.unroll_length)
  item_spec = items.item_spec(
      obs_spec, action_space, unroll,
      core_state_spec=learner.network.core_state_spec())
  batch = {k: tf.zeros([spec.batch_size] + s.shape.as_list()[1:], s.dtype)
           for k, s in item_spec.items()}
  element = items.to_trajectory(batch)
  return learner, tf.data.Dataset.from_tensors(element).repeat()


NETWORKS = {
    # Catch's MLP with the default heads, and the Atari ResNet on Pong-sized
    # frames; both with the trainer's default unroll and a small batch.
    "mlp": dict(env="catch", unroll_length=20, batch_size=32,
                config_overrides={}),
    "resnet": dict(env="atari:Pong", unroll_length=20, batch_size=8,
                   config_overrides={}),
}


def _spec(agent: str, network: str, overrides: Dict[str, Any]):
  from tf_metagrad import runs  # pylint: disable=g-import-not-at-top
  setting = dict(NETWORKS[network])
  setting["config_overrides"] = dict(setting["config_overrides"],
                                     **overrides)
  return runs.RunSpec(agent=agent, **setting)


def count(agent: str, network: str, steps_per_call: int,
          overrides: Dict[str, Any]) -> Dict[str, Any]:
  """Programs and reductions of one trainer call, and dynamic shapes."""
  strategy = XlaRunStrategy()
  learner, dataset = trainer_batches(_spec(agent, network, overrides),
                                     strategy)
  iterator = iter(dataset)
  with strategy.scope():
    env_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
  kwargs = dict(_max_steps(learner, steps_per_call), env_steps=env_steps,
                frames_per_step=1)
  learner.steps_from_iterator(iterator, steps_per_call, **kwargs)
  runs_before = int(strategy.runs.numpy())
  reductions_before = int(strategy.reductions.numpy())
  learner.steps_from_iterator(iterator, steps_per_call, **kwargs)
  return {"programs": int(strategy.runs.numpy()) - runs_before,
          "reductions": int(strategy.reductions.numpy()) - reductions_before,
          "dynamic": strategy.dynamic()}


def _max_steps(learner, steps: int) -> Dict[str, int]:
  """The trainer's `max_steps` argument, where the learner takes one (a
  baseline from before it did not)."""
  if "max_steps" in inspect.signature(learner.steps_from_iterator).parameters:
    return {"max_steps": steps}
  return {}


def _calls(learner, iterator, steps: int) -> Callable[[], tf.Tensor]:
  kwargs = _max_steps(learner, steps)

  def call():
    metrics, _ = learner.steps_from_iterator(iterator, steps, **kwargs)
    return metrics["grad_norm"]
  return call


def _worker(agent: str, network: str, steps: str) -> None:
  """Times calls on request: reads a count per line, answers seconds."""
  learner, dataset = trainer_batches(_spec(agent, network, {}), None)
  call = _calls(learner, iter(dataset), int(steps))
  float(call())  # Traces.
  print("ready", flush=True)
  for line in sys.stdin:
    n = int(line)
    start = time.perf_counter()
    for _ in range(n):
      float(call())
    print(time.perf_counter() - start, flush=True)


def _in_code_base(code_root: str, call: str, *args: str,
                  **popen: Any) -> subprocess.Popen:
  """`python -c` running `xla_run.<call>(*args)` with `tf_metagrad` from
  `code_root` (this module comes from this checkout; it imports
  `tf_metagrad` only inside functions, see `trainer_batches`)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen(
      [sys.executable, "-c",
       "import sys; from benchmarks import xla_run as d; "
       "sys.path.insert(0, sys.argv[1]); "
       f"d.{call}(*sys.argv[2:])", code_root, *args],
      cwd=os.path.dirname(ROOT), env=env, stdout=subprocess.PIPE, text=True,
      **popen)


def _print_count(agent: str, network: str, steps: str) -> None:
  print(json.dumps(count(agent, network, int(steps), {})), flush=True)


def count_in(code_root: str, agent: str, network: str,
             steps_per_call: int) -> Dict[str, Any]:
  """`count` run on the code base at `code_root`, in a process of its own."""
  proc = _in_code_base(code_root, "_print_count", agent, network,
                       str(steps_per_call))
  out, _ = proc.communicate(timeout=1800)
  if proc.returncode:
    raise RuntimeError(f"counting in {code_root} failed (exit "
                       f"{proc.returncode})")
  return json.loads(out.strip().splitlines()[-1])


def _start_worker(code_root: str, agent: str, network: str, steps: int
                  ) -> subprocess.Popen:
  proc = _in_code_base(code_root, "_worker", agent, network, str(steps),
                       stdin=subprocess.PIPE)
  line = proc.stdout.readline()
  if line.strip() != "ready":
    proc.kill()
    raise RuntimeError(f"the worker for {code_root} did not start "
                       f"(got {line!r})")
  return proc


def interleaved_call_ms(baseline: str, agent: str, network: str, steps: int,
                        repeats: int, calls: int) -> Tuple[float, float]:
  """Median ms per learner call here and in `baseline`, taking turns."""
  workers = {"this": _start_worker(ROOT, agent, network, steps),
             "baseline": _start_worker(baseline, agent, network, steps)}
  times = {k: [] for k in workers}
  try:
    for _ in range(repeats):
      for name, proc in workers.items():
        proc.stdin.write(f"{calls}\n")
        proc.stdin.flush()
        times[name].append(1000 * float(proc.stdout.readline()) / calls)
  finally:
    for proc in workers.values():
      proc.stdin.close()
      proc.wait(timeout=60)
  return (statistics.median(times["this"]),
          statistics.median(times["baseline"]))


