"""Runs a meta-gradient and one learner step on 1 device and on a
MirroredStrategy over 2 logical CPUs with the same global batch, for the agent
named on the command line: STAC (M = 1) or FRODO (M = 3 inner steps); prints
the results as JSON. A separate process because logical devices must be
configured before TensorFlow initialises its devices."""

import json
import sys

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# pylint: disable=g-import-not-at-top,wrong-import-position
from tf_metagrad import agents
from tf_metagrad import types
from tests.agents import helpers

# FRODO cuts the unroll into M + 1 = 4 trajectories of 2 steps.
CASES = {
    "stac": dict(unroll=4, overrides={}),
    "frodo": dict(unroll=8, overrides=dict(num_inner_steps=3, meta_units=4)),
}
GLOBAL_BATCH = 4


def _max_abs_diff(before, after):
  return max(float(np.max(np.abs(np.asarray(a, np.float64)
                                 - np.asarray(b, np.float64))))
             for a, b in zip(before, after))


def _snapshot(learner):
  return ([v.numpy() for v in learner.network.trainable_variables],
          [v.numpy() for v in learner.meta_params().values()])


def _moved(learner, snapshot):
  params, meta = _snapshot(learner)
  return _max_abs_diff(snapshot[0], params), _max_abs_diff(snapshot[1], meta)


def run_case(agent, unroll, overrides):
  """Single-device vs 2-replica results of `agent` on one global batch."""
  spec, space = helpers.spaces()
  kwargs = dict(dtype="float64", mlp_hidden_sizes=(8,),
                head_hidden_sizes=(8,), learning_rate=0.05, **overrides)
  single = agents.make_learner(agent, spec, space, **kwargs)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  mirrored = agents.make_learner(agent, spec, space, strategy=strategy,
                                 **kwargs)
  for src, dst in zip(single.variables, mirrored.variables):
    assert src.shape == dst.shape, (src.name, dst.name)
    dst.assign(src)
  batch = helpers.random_trajectory(np.random.default_rng(0), unroll,
                                    GLOBAL_BATCH)
  local = GLOBAL_BATCH // strategy.num_replicas_in_sync

  def shard(ctx):
    start = local * ctx.replica_id_in_sync_group
    return types.Trajectory(*[
        x[:, start:start + local] if tf.is_tensor(x) else x for x in batch])

  dist = strategy.experimental_distribute_values_from_function(shard)
  # pylint: disable=protected-access
  want = single.metagradient(*single._split(batch))
  got = strategy.run(lambda b: mirrored.metagradient(*mirrored._split(b)),
                     args=(dist,))
  # pylint: enable=protected-access
  meta_diff = max(
      float(np.max(np.abs(r.numpy() - want[k].numpy())))
      for k in want for r in strategy.experimental_local_results(got[k]))
  single_before, mirrored_before = _snapshot(single), _snapshot(mirrored)
  single_metrics = single.step(batch)
  mirrored_metrics = mirrored.step(dist)
  single_moved = _moved(single, single_before)
  mirrored_moved = _moved(mirrored, mirrored_before)
  return {
      "replicas": strategy.num_replicas_in_sync,
      "meta_grad_max_abs_diff": meta_diff,
      "meta_grad_norm": float(np.sqrt(sum(
          np.sum(np.square(v.numpy())) for v in want.values()))),
      "variables_max_abs_diff_after_step": _max_abs_diff(
          [v.numpy() for v in single.variables],
          [v.numpy() for v in mirrored.variables]),
      "params_moved_single": single_moved[0],
      "params_moved_mirrored": mirrored_moved[0],
      "meta_moved_single": single_moved[1],
      "meta_moved_mirrored": mirrored_moved[1],
      "outer_loss_single": float(single_metrics["outer_loss"]),
      "outer_loss_mirrored_sum": float(mirrored_metrics["outer_loss"]),
      "skipped_updates_single": int(single.skipped_updates.numpy()),
      "skipped_updates_mirrored": int(mirrored.skipped_updates.numpy()),
      "learner_steps": int(mirrored.learner_steps.numpy()),
  }


def main():
  # One agent per process: with a second MirroredStrategy in the same
  # process, TF 2.15's eager all-reduces fail with a collective shape mismatch.
  agent, = sys.argv[1:]
  print(json.dumps(run_case(agent, **CASES[agent])))


if __name__ == "__main__":
  main()
