"""Helpers shared by the benchmarks: synthetic batches, timing, memory."""

import resource
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

from absl import app
from absl import flags
import gymnasium
import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import types
from tf_metagrad.system import server as server_lib
from tf_metagrad.distribute import strategies

# The benchmarks' agent networks (see benchmarks.learner_step's docstring).
NETWORKS = {
    # name: (observation shape, observation dtype, number of actions, torso)
    "resnet": ((84, 84, 4), "uint8", 18, "resnet"),
    "mlp": ((64,), "float32", 6, "mlp"),
    "conv": ((84, 84, 3), "uint8", 6, "conv"),
}
# Trajectories per benchmark batch: the batches the speed comparisons use.
DEFAULT_BATCH_SIZE = {"mlp": 32, "resnet": 8, "conv": 8}


def network_overrides(network: str, tiny: bool) -> dict:
  """Config overrides that pick the benchmark's network."""
  overrides = {"torso": NETWORKS[network][3]}
  if tiny:
    overrides.update(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,),
                     resnet_channels=(4,))
  return overrides


def build_learner(agent: str, network: str, jit_compile: bool, seed: int,
                  tiny: bool = False, frodo_inner_steps: int = 1,
                  head_hidden_sizes=None, compute_dtype: str = "float32"):
  """The learner of `agent` on one of `NETWORKS`; `head_hidden_sizes` None
  keeps the config's default heads, () gives linear heads."""
  shape, dtype, num_actions, _ = NETWORKS[network]
  overrides = dict(network_overrides(network, tiny), jit_compile=jit_compile,
                   seed=seed, **compute_overrides(compute_dtype))
  if head_hidden_sizes is not None:
    overrides["head_hidden_sizes"] = tuple(head_hidden_sizes)
  if agent == "frodo":
    overrides["num_inner_steps"] = frodo_inner_steps
  return agents.make_learner(agent, tf.TensorSpec(shape, dtype),
                             gymnasium.spaces.Discrete(num_actions),
                             **overrides)


def peak_rss_mb() -> float:
  """Peak resident set size of this process so far, in MiB."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  # Linux reports ru_maxrss in KiB, macOS in bytes.
  if sys.platform == "darwin":
    peak /= 1024.0
  return peak / 1024.0


def random_trajectory(rng: np.random.Generator, unroll_length: int,
                      batch_size: int, observation_shape: Sequence[int],
                      observation_dtype: str,
                      num_actions: int) -> types.Trajectory:
  """A time-major random `Trajectory` of eager tensors.

  The tensors are created up front so that host-to-tensor conversion is not
  part of any timed call.

  Args:
    rng: the numpy generator the data comes from.
    unroll_length: T; observations have T + 1 steps.
    batch_size: B.
    observation_shape: shape of one observation.
    observation_dtype: "uint8" (frames in [0, 255]) or a float dtype.
    num_actions: A of the discrete action space.

  Returns:
    A `types.Trajectory` with observation `[T+1, B, ...]` and `[T, B]` fields.
  """
  t, b = unroll_length, batch_size
  obs_shape = (t + 1, b) + tuple(observation_shape)
  if observation_dtype == "uint8":
    observation = rng.integers(0, 256, size=obs_shape, dtype=np.uint8)
  else:
    observation = rng.standard_normal(obs_shape).astype(observation_dtype)
  # Episodes end now and then so the traces are cut as in real data.
  discount = (rng.random((t, b)) > 0.05).astype(np.float32)
  # A behaviour policy close to uniform: importance ratios near 1.
  behaviour_log_prob = (-np.log(num_actions)
                        + 0.1 * rng.standard_normal((t, b)))
  return types.Trajectory(
      observation=tf.constant(observation),
      action=tf.constant(rng.integers(0, num_actions, size=(t, b)),
                         dtype=tf.int32),
      reward=tf.constant(rng.standard_normal((t, b)), dtype=tf.float32),
      discount=tf.constant(discount),
      behaviour_log_prob=tf.constant(
          np.minimum(behaviour_log_prob, 0.0), dtype=tf.float32))


def timed_call(fn: Callable[[], tf.Tensor]) -> float:
  """Wall seconds of `fn()`, including the host sync on its result."""
  start = time.perf_counter()
  result = fn()
  # Reading the value on the host waits for the computation to finish.
  np.asarray(result)
  return time.perf_counter() - start


def interleaved_times(calls: Dict[str, Callable[[], tf.Tensor]],
                      warmup: int, repeats: int) -> Dict[str, List[float]]:
  """Times each call `repeats` times after `warmup` untimed calls.

  The calls take turns within each repeat so that slow drift of the machine
  (thermal, other processes) affects all of them alike, which keeps their
  ratios meaningful on a shared CPU.

  Args:
    calls: name -> zero-argument function returning a tensor to sync on.
    warmup: untimed calls of each function first (the first one traces).
    repeats: timed calls of each function.

  Returns:
    name -> list of `repeats` wall times in seconds.
  """
  for fn in calls.values():
    for _ in range(warmup):
      timed_call(fn)
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, fn in calls.items():
      times[name].append(timed_call(fn))
  return times


def cpu_ms_per_call(fn: Callable[[], tf.Tensor], calls: int) -> float:
  """Mean CPU time of the whole process (every thread: TF's pools spin and
  split ops) per call of `fn`, over `calls` back-to-back calls, in ms. On a
  machine that also runs actors, this, not the wall time, is what a learner
  step takes from them."""
  start = time.process_time()
  for _ in range(calls):
    np.asarray(fn())
  return 1e3 * (time.process_time() - start) / calls


def summary_ms(seconds: Sequence[float]) -> Tuple[float, float, float]:
  """(median, min, max) of wall times, in milliseconds."""
  ms = [1e3 * s for s in seconds]
  return statistics.median(ms), min(ms), max(ms)


def define_head_flag():
  """--head_hidden_sizes; read it with `head_hidden_sizes`."""
  return flags.DEFINE_list(
      "head_hidden_sizes", None, "Hidden widths of each policy/value head "
      "MLP, comma-separated; empty (--head_hidden_sizes=) for linear heads "
      "on the torso's features, the IMPALA network. Default: the config's "
      "or preset's.")


def head_hidden_sizes(flag):
  """`define_head_flag`'s value as a tuple of ints (() linear), None if
  unset."""
  if flag.value is None:
    return None
  try:
    return tuple(int(h) for h in flag.value)
  except ValueError:
    raise app.UsageError(
        f"--head_hidden_sizes={','.join(flag.value)}: expected "
        f"comma-separated positive ints or nothing.") from None


def define_compute_dtype_flag():
  """--compute_dtype; turn its value into config fields with
  `compute_overrides`."""
  return flags.DEFINE_enum(
      "compute_dtype", "float32", ["float32", "bfloat16"],
      "Dtype the networks compute in. bfloat16 keeps float32 parameters, "
      "optimizer state, returns and losses (the config's compute_dtype); on "
      "CPUs with AMX or AVX512-BF16 oneDNN runs its matmuls faster.")


def compute_overrides(compute_dtype: str) -> dict:
  """Config fields for `define_compute_dtype_flag`'s value (float32: none,
  the config's default)."""
  return {} if compute_dtype == "float32" else {"compute_dtype": compute_dtype}


def define_thread_flags():
  """--inter_op_threads and --intra_op_threads, as in trainers.train."""
  return (flags.DEFINE_integer(
      "inter_op_threads", 0, "Threads that run independent TF ops side by "
      "side (0: TF's default).", lower_bound=0),
          flags.DEFINE_integer(
              "intra_op_threads", 0, "Threads that split one TF op (0: TF's "
              "default).", lower_bound=0))


def configure_threads(thread_flags) -> str:
  """Applies `define_thread_flags`' values before any op runs; returns them
  as `inter_op_threads=I intra_op_threads=J` for the header line."""
  inter, intra = (f.value for f in thread_flags)
  strategies.configure_threads(inter, intra)
  return f"inter_op_threads={inter} intra_op_threads={intra}"


def free_running_tables(item_spec: Dict[str, tf.TensorSpec],
                        weights_variables: Sequence[tf.Variable],
                        max_size: int) -> List[reverb.Table]:
  """The run's Reverb tables, with a trajectory table that drops its oldest
  item when full, so that actors never wait on a learner that does not
  read (benchmarks of the acting side)."""
  tables = [t for t in server_lib.make_tables(
      item_spec, server_lib.weights_signature(weights_variables), 1)
            if t.name != server_lib.TRAJECTORY_TABLE]
  tables.append(reverb.Table(
      name=server_lib.TRAJECTORY_TABLE, sampler=reverb.selectors.Fifo(),
      remover=reverb.selectors.Fifo(), max_size=max_size,
      rate_limiter=reverb.rate_limiters.MinSize(1), signature=item_spec))
  return tables
