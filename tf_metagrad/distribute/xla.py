"""Which strategies can run an XLA-compiled replica step, and when to.

The learner compiles the replica function, the one given to `strategy.run`
(all-reduces included), as TPUStrategy does: the batch comes in as an
argument and the step loop, the iterator and the cross-replica reduction of
the metrics stay outside the compiled region. TPUStrategy compiles that
function whatever the flag. MirroredStrategy (and its multi-worker form)
cannot run it compiled: in TF 2.15 its replica context answers every
all-reduce and mirrored assignment with a `merge_call`, which may not happen
inside a nested function (TF drops the `merge_call` under XLA only when
every device is a GPU), so that combination is refused when the learner is
built.

Here rather than in the learner because the strategy's kind decides it, and
the strategy factory (`distribute.strategies`) and the learners both need
the same answer.
"""

from typing import Callable, Union

import tensorflow as tf

# merge_call-based replica contexts; see the module docstring.
_MIRRORED_STRATEGIES = (tf.distribute.MirroredStrategy,
                        tf.distribute.MultiWorkerMirroredStrategy,
                        tf.compat.v1.distribute.MirroredStrategy,
                        tf.compat.v1.distribute.experimental
                        .MultiWorkerMirroredStrategy)
TPU_STRATEGIES = (tf.distribute.TPUStrategy,
                  tf.distribute.experimental.TPUStrategy,
                  tf.compat.v1.distribute.experimental.TPUStrategy)


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
  """Whether `strategy` runs on TPUs (and so compiles every replica
  function with XLA, and cannot hold float64 variables)."""
  return isinstance(strategy, TPU_STRATEGIES)


def check_jit_compile(strategy: tf.distribute.Strategy,
                      jit_compile: Union[bool, str]) -> None:
  """Raises when `strategy` cannot run an XLA-compiled replica step.

  Args:
    strategy: the learner's strategy.
    jit_compile: the agent config's `jit_compile`; only True can fail
      ("auto" resolves to False where XLA cannot run).

  Raises:
    ValueError: `jit_compile=True` with a MirroredStrategy or
      MultiWorkerMirroredStrategy, or with a multi-replica strategy other
      than TPUStrategy.
  """
  if jit_compile is not True or is_tpu(strategy):
    return
  if not _can_compile_replica(strategy):
    raise ValueError(
        f"jit_compile=True compiles the per-replica learner step, which "
        f"{type(strategy).__name__} cannot run under XLA in TF 2.15 (its "
        f"all-reduces and variable updates need merge_call); use "
        f"jit_compile=False with it, or the default or TPU strategy.")


def _can_compile_replica(strategy: tf.distribute.Strategy) -> bool:
  return not (isinstance(strategy, _MIRRORED_STRATEGIES)
              or strategy.num_replicas_in_sync > 1)


def resolve_jit_compile(strategy: tf.distribute.Strategy,
                        jit_compile: Union[bool, str], torso: str) -> bool:
  """Whether the replica step is compiled with XLA.

  True and False are taken as given (True where XLA cannot run raises, see
  `check_jit_compile`). "auto" (the default) compiles under TPUStrategy,
  which compiles the replica function in any case, and nowhere else.

  Why not on CPU: measured on a quiet 2-core CPU with
  `benchmarks.xla_compile` (median of interleaved steps, B=32 T=20 for the
  MLP, B=8 T=20 for the conv torsos), the XLA replica step was slower for
  every torso and agent: MLP torso with the default (256, 256) heads,
  XLA/plain 1.07 (DrMG) to 1.44 (FRODO), STAC 36.7 vs 27.7 ms, IMPALA 16.5
  vs 13.1 ms; MLP with linear heads, IMPALA 6.07 vs 5.43 ms and STAC 13.6
  vs 11.2 ms; Atari ResNet, IMPALA 2028 vs 338 ms (6.0x) and STAC 4757 vs
  1104 ms (4.3x); DM Control pixel torso, IMPALA 1897 vs 623 ms (3.0x) and
  STAC 4290 vs 1487 ms (2.9x).
  oneDNN's fused matmul and convolution kernels beat XLA's CPU code
  generation on these shapes, and the per-op overhead XLA removes is small
  next to them. `torso` ("mlp", "resnet" or "conv") is taken so that a
  torso measured the other way round can opt in here.

  Args:
    strategy: the learner's strategy.
    jit_compile: the agent config's `jit_compile`: True, False or "auto".
    torso: the network's torso kind.

  Returns:
    True to compile the replica step with XLA.
  """
  check_jit_compile(strategy, jit_compile)
  if jit_compile != "auto":
    return bool(jit_compile)
  if is_tpu(strategy):
    return True
  del torso  # No CPU torso measured faster under XLA (see above).
  return False


def replica_function(strategy: tf.distribute.Strategy, fn: Callable,
                     jit_compile: bool) -> Callable:
  """`fn` as it should be given to `strategy.run`.

  TPUStrategy compiles the replica function itself, so `fn` is returned
  as it is there; elsewhere a compiled step is `fn` wrapped in a
  `tf.function(jit_compile=True)`, and a plain one is `fn` itself, traced
  inline into the caller's graph.

  Without autograph, as every learner `tf.function` (see `agents.base`):
  the step has no Python control flow that depends on a tensor.

  Args:
    strategy: the strategy that will run `fn`.
    fn: the replica step.
    jit_compile: what `resolve_jit_compile` decided.

  Returns:
    The function to give to `strategy.run`.
  """
  if jit_compile and not is_tpu(strategy):
    return tf.function(fn, jit_compile=True, autograph=False)
  return fn
