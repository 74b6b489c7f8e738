"""The learner's device path as TPUStrategy would compile it, on CPU.

`benchmarks.xla_run.XlaRunStrategy` compiles every function the
learner gives to `strategy.run` with XLA, as TPUStrategy does, and records
its input and output shapes in the traced graph. For every agent, float32
with 4 steps per call and bfloat16 with 1, the trainer's learner call
(`steps_from_iterator` with a runtime `num_steps`, `max_steps` the steps per
call, the env-step counter, on elements shaped as the trainer's input
pipeline yields them) must:
- compile and run, with every input and output of every compiled function
  of fully static shape (a TPU program cannot have any other);
- launch one program per learner step and reduce its metrics once per call;
- serve the shorter last call of a run (fewer steps, same `max_steps`) from
  the same trace.
CPU XLA would compile a dynamic shape (it specialises on the values it sees
per call), so the static-shape check is what stands for the TPU here; the
last test shows it catches one.
"""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import xla_run
from tf_metagrad import runs

TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}
AGENT_OVERRIDES = {
    "impala": {}, "mgrl": {}, "stac": {}, "stacx": {"num_heads": 2},
    "frodo": {"num_inner_steps": 2, "meta_units": 4},
    "drmg": {"num_quantiles": 4},
}


def _learner(agent, compute_dtype):
  overrides = dict(TINY, **AGENT_OVERRIDES[agent])
  if compute_dtype == "bfloat16":
    overrides["compute_dtype"] = "bfloat16"
  spec = runs.RunSpec(agent=agent, env="catch", config_overrides=overrides,
                      unroll_length=4, batch_size=4)
  strategy = xla_run.XlaRunStrategy()
  learner, dataset = xla_run.trainer_batches(spec, strategy)
  with strategy.scope():
    env_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
  return strategy, learner, iter(dataset), env_steps


# Every agent with every value of each factor, each value once: float32
# with 4 steps per call, bfloat16 with 1. The two factors act on different
# parts of the programs (the steps per call on the extras' buffer and the
# loop around the step, the compute dtype on the update inside it) and no
# shape depends on the dtype, so a cross product would compile each update
# once more around a loop already checked; each XLA compile costs seconds
# of the suite's CPU.
@pytest.mark.parametrize("agent,compute_dtype,steps_per_call", [
    (agent, dtype, steps) for agent in sorted(AGENT_OVERRIDES)
    for dtype, steps in (("float32", 4), ("bfloat16", 1))])
def test_every_strategy_run_compiles_with_static_shapes(agent, compute_dtype,
                                                        steps_per_call):
  strategy, learner, iterator, env_steps = _learner(agent, compute_dtype)
  frames = 16
  # A full call, then a last call of one step (the last of a run).
  counts = [steps_per_call, 1]
  for num_steps in counts:
    runs_before = int(strategy.runs.numpy())
    reductions_before = int(strategy.reductions.numpy())
    metrics, extras = learner.steps_from_iterator(
        iterator, num_steps, env_steps=env_steps, frames_per_step=frames,
        max_steps=steps_per_call)
    assert int(strategy.runs.numpy()) - runs_before == num_steps
    assert int(strategy.reductions.numpy()) - reductions_before == 1
    assert np.isfinite(float(metrics["inner_loss"]))
    assert extras["episode_return"].shape[0] == steps_per_call
  assert strategy.compiled
  # The shorter call reused the full call's trace.
  assert learner._iterator_steps_fn.experimental_get_tracing_count() == 1  # pylint: disable=protected-access
  assert strategy.dynamic() == []
  done = sum(counts)
  assert int(learner.learner_steps.numpy()) == (
      done * learner.updates_per_batch)
  assert int(env_steps.numpy()) == done * frames


def test_the_check_finds_a_shape_set_by_a_runtime_value():
  strategy = xla_run.XlaRunStrategy()

  @tf.function(autograph=False)
  def rows(n):
    return strategy.run(lambda: tf.zeros(tf.stack([n, 3])))

  assert rows(tf.constant(2)).shape == (2, 3)
  assert len(strategy.dynamic()) == 1
  assert "outputs [TensorShape([None, 3])]" in strategy.dynamic()[0]
