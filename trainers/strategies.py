"""The learner's `tf.distribute` strategy from the trainer's settings.

Flag-free, so that it can be imported (and tested) beside other binaries'
absl flags.
"""

from typing import Optional

import tensorflow as tf


def make(strategy: str, tpu: Optional[str] = None,
         logical_cpus: int = 0) -> tf.distribute.Strategy:
  """The strategy named by --strategy (default | mirrored | tpu).

  Args:
    strategy: "default" (one device), "mirrored" (the local devices, or the
      `logical_cpus` logical CPUs), "tpu" (see `tpu_strategy`).
    tpu: the TPU for "tpu".
    logical_cpus: > 0 splits the first CPU into that many logical devices
      (to exercise a Mirrored learner on a CPU).
  """
  if logical_cpus:
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
  if strategy == "default":
    return tf.distribute.get_strategy()
  if strategy == "mirrored":
    devices = None
    if logical_cpus:
      devices = [f"/cpu:{i}" for i in range(logical_cpus)]
    return tf.distribute.MirroredStrategy(devices)
  return tpu_strategy(tpu)


def tpu_strategy(tpu: str) -> tf.distribute.TPUStrategy:
  """A `TPUStrategy` over the TPU `tpu` (see --tpu), initialised.

  Args:
    tpu: a TPU node's name or grpc:// address, whose TensorFlow server the
      process connects to as a remote cluster; or "local", the chips of the
      TPU VM this process runs on, which are its own devices: the resolver
      then reports no master and no cluster, and TF's
      `experimental_connect_to_cluster` would return without doing anything.
  """
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  if tpu != "local":
    tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)
