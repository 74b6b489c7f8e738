"""Runs one STAC meta-gradient and learner step on 1 device and on a
MirroredStrategy over 2 logical CPUs with the same global batch; prints the
largest differences as JSON. A separate process because logical devices must
be configured before TensorFlow initialises its devices."""

import json

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# pylint: disable=g-import-not-at-top,wrong-import-position
from tf_metagrad import agents
from tf_metagrad import types
from tests.agents import helpers


def main():
  spec, space = helpers.spaces()
  kwargs = dict(dtype="float64", mlp_hidden_sizes=(8,),
                head_hidden_sizes=(8,), learning_rate=0.05)
  single = agents.make_learner("stac", spec, space, **kwargs)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  mirrored = agents.make_learner("stac", spec, space, strategy=strategy,
                                 **kwargs)
  for src, dst in zip(single.variables, mirrored.variables):
    dst.assign(src)
  batch = helpers.random_trajectory(np.random.default_rng(0), 4, 4)

  def shard(ctx):
    half = 2 * ctx.replica_id_in_sync_group
    return types.Trajectory(*[
        x[:, half:half + 2] if tf.is_tensor(x) else x for x in batch])

  dist = strategy.experimental_distribute_values_from_function(shard)
  want = single.metagradient(batch, batch)
  got = strategy.run(lambda b: mirrored.metagradient(b, b), args=(dist,))
  meta_diff = max(
      float(np.max(np.abs(r.numpy() - want[k].numpy())))
      for k in want for r in strategy.experimental_local_results(got[k]))
  single_metrics = single.step(batch)
  mirrored_metrics = mirrored.step(dist)
  var_diff = max(
      float(np.max(np.abs(np.asarray(a.numpy(), np.float64)
                          - np.asarray(b.numpy(), np.float64))))
      for a, b in zip(single.variables, mirrored.variables))
  moved = max(float(np.max(np.abs(a.numpy() - b)))
              for a, b in zip(single.network.trainable_variables,
                              [v.numpy() for v in
                               mirrored.network.trainable_variables]))
  print(json.dumps({
      "replicas": strategy.num_replicas_in_sync,
      "meta_grad_max_abs_diff": meta_diff,
      "meta_grad_norm": float(np.sqrt(sum(
          np.sum(np.square(v.numpy())) for v in want.values()))),
      "variables_max_abs_diff_after_step": var_diff,
      "params_diff": moved,
      "outer_loss_single": float(single_metrics["outer_loss"]),
      "outer_loss_mirrored_sum": float(mirrored_metrics["outer_loss"]),
      "learner_steps": int(mirrored.learner_steps.numpy()),
  }))


if __name__ == "__main__":
  main()
