"""The learner's `tf.distribute` strategy from the trainer's settings.

Flag-free, so that it can be imported (and tested) beside other binaries'
absl flags.
"""

import json
import os
from typing import Callable, List, Mapping, Optional

import tensorflow as tf
# Internal API: the coordination service must be configured before the
# strategy starts it, and MultiWorkerMirroredStrategy takes no argument for
# its heartbeat or registration timeouts.
from tensorflow.python.eager import context  # pylint: disable=g-direct-tensorflow-import
from tensorflow.tsl.protobuf import coordination_config_pb2  # pylint: disable=g-direct-tensorflow-import

from tf_metagrad.distribute import xla


def configure_threads(inter_op: int = 0, intra_op: int = 0) -> None:
  """Sizes TF's two CPU thread pools; 0 keeps TF's default (one thread per
  core in each). Must run before TensorFlow executes its first op.

  The inter-op pool runs independent ops side by side; the intra-op pool
  splits one op (a matmul, a convolution) over threads. On the 2-core
  machine of docs/PERFORMANCE.md's tables, oneDNN gained nothing from a
  second thread inside a 256-wide matmul, and two threads per op on top of two
  concurrent ops oversubscribed the cores: the MLP learner steps were
  10-15% faster with `inter_op=2, intra_op=1`. The ResNet steps, whose
  convolutions do split well, were 26-52% slower, hence no new default
  (docs/PERFORMANCE.md).
  """
  for name, value in (("inter_op", inter_op), ("intra_op", intra_op)):
    if not isinstance(value, int) or value < 0:
      raise ValueError(f"{name} threads must be an int >= 0, got {value!r}.")
  try:
    if inter_op:
      tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    if intra_op:
      tf.config.threading.set_intra_op_parallelism_threads(intra_op)
  except RuntimeError:
    raise ValueError(
        "thread pools can only be sized before TensorFlow runs its first "
        "op") from None


def enable_memory_growth() -> List[str]:
  """Lets TensorFlow take GPU memory as it needs it, on every visible GPU;
  returns their names.

  By default TF reserves nearly all of each GPU's memory when it first
  touches it, which starves anything else on the host that uses the GPU
  (another learner worker, a second run). Must run before TF initialises
  its devices (before the strategy is built or any op runs).

  Raises:
    RuntimeError: if TF has initialised the GPUs already.
  """
  gpus = tf.config.list_physical_devices("GPU")
  try:
    for gpu in gpus:
      tf.config.experimental.set_memory_growth(gpu, True)
  except RuntimeError:
    raise RuntimeError("GPU memory growth can only be set before TensorFlow "
                       "initialises the GPUs") from None
  return [gpu.name for gpu in gpus]


def _mirrored_on_cpus(logical_cpus: int) -> str:
  """The one line saying why a Mirrored learner runs on CPU replicas."""
  if logical_cpus:
    where = f"{logical_cpus} logical CPU replicas (--logical_cpus)"
  else:
    where = "1 CPU replica"
  if not tf.test.is_built_with_cuda():
    why = ("this TensorFlow has no CUDA support (pip install '.[gpu]' or "
           "TF_METAGRAD_GPU=1 ./run.sh train installs the CUDA build)")
  else:
    why = ("TensorFlow sees no GPU (driver missing, or hidden by "
           "CUDA_VISIBLE_DEVICES)")
  return f"--strategy=mirrored: no GPU found, training on {where}: {why}"


def make(strategy: str, tpu: Optional[str] = None,
         logical_cpus: int = 0,
         worker_timeout_s: float = 600.0,
         log: Callable[[str], None] = lambda line: None
         ) -> tf.distribute.Strategy:
  """The strategy named by --strategy (default | mirrored | tpu |
  multi_worker).

  Args:
    strategy: "default" (one device), "mirrored" (the local GPUs, or the
      CPU; or the `logical_cpus` logical CPUs), "tpu" (see
      `tpu_strategy`), "multi_worker" (see `multi_worker`).
    tpu: the TPU for "tpu".
    logical_cpus: > 0 splits the first CPU into that many logical devices
      (to exercise a Mirrored learner on a CPU).
    worker_timeout_s: for "multi_worker", see `multi_worker`.
    log: one-line logger; told when "mirrored" finds no GPU, which would
      otherwise train on the CPU without a word.
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
    if not tf.config.list_physical_devices("GPU"):
      log(_mirrored_on_cpus(logical_cpus))
    return tf.distribute.MirroredStrategy(devices)
  if strategy == "multi_worker":
    return multi_worker(worker_timeout_s)
  return tpu_strategy(tpu)


def name_of(strategy: tf.distribute.Strategy) -> str:
  """The --strategy value `make` builds `strategy` from (default, mirrored,
  multi_worker, tpu); another kind by its class name."""
  # MultiWorkerMirroredStrategy before MirroredStrategy: the same family.
  for name, kinds in (("tpu", xla.TPU_STRATEGIES),
                      ("multi_worker",
                       (tf.distribute.MultiWorkerMirroredStrategy,)),
                      ("mirrored", (tf.distribute.MirroredStrategy,))):
    if isinstance(strategy, kinds):
      return name
  # Outside every strategy's scope, as the trainer runs, that is the default.
  if strategy is tf.distribute.get_strategy():
    return "default"
  return type(strategy).__name__


# A worker whose heartbeats stop for this long is reported lost to the
# others (their collectives abort with an UnavailableError naming it).
HEARTBEAT_S = 10.0
# At exit a worker waits this long for the others to reach the shutdown
# barrier (they exit together unless one was lost).
SHUTDOWN_S = 60.0


def check_tf_config(environ: Mapping[str, str] = os.environ) -> dict:
  """The parsed `TF_CONFIG` of a multi-worker run, or a ValueError whose
  one line says what is wrong with it."""
  text = environ.get("TF_CONFIG")
  if not text:
    raise ValueError(
        "TF_CONFIG is not set; --strategy=multi_worker reads the cluster "
        "from it, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:"
        "12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", "
        "\"index\": 0}}' on the first host and index 1 on the second")
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not JSON ({e})") from None
  cluster = config.get("cluster") if isinstance(config, dict) else None
  task = config.get("task") if isinstance(config, dict) else None
  if not isinstance(cluster, dict) or not isinstance(task, dict):
    raise ValueError("TF_CONFIG needs a \"cluster\" and a \"task\" object")
  jobs = {k: v for k, v in cluster.items() if k in ("chief", "worker")}
  unknown = sorted(set(cluster) - {"chief", "worker"})
  if unknown:
    raise ValueError(f"TF_CONFIG's cluster has jobs {unknown}; "
                     f"--strategy=multi_worker runs \"chief\" and \"worker\" "
                     f"tasks only")
  if not jobs or not all(isinstance(v, list) and v for v in jobs.values()):
    raise ValueError("TF_CONFIG's cluster lists no \"worker\" (or "
                     "\"chief\") addresses")
  if len(jobs.get("chief", [])) > 1:
    raise ValueError("TF_CONFIG's cluster has more than one chief")
  kind, index = task.get("type"), task.get("index")
  if kind not in jobs or not isinstance(index, int) or not (
      0 <= index < len(jobs[kind])):
    raise ValueError(f"TF_CONFIG's task {task} is not one of the cluster's "
                     f"tasks {jobs}")
  return config


def multi_worker(worker_timeout_s: float = 600.0
                 ) -> tf.distribute.MultiWorkerMirroredStrategy:
  """`MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG`.

  The waits between workers are bounded by the coordination service: all
  workers must register within `worker_timeout_s` of each other's start,
  and a worker whose heartbeats stop for `HEARTBEAT_S` is reported lost to
  the others, whose collectives then abort. The collectives themselves get
  no timeout of their own: in TF 2.15 a collective timeout parks one
  sleeping thread per collective op for that long (thousands of threads
  within seconds of training, then `std::system_error` aborts the process),
  and a live worker only waits on its peers' bounded work (data timeouts,
  checkpoint writes).

  Raises:
    ValueError: `TF_CONFIG` is missing or does not describe this task.
  """
  config = check_tf_config()
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  jobs = [job for job in ("chief", "worker") if job in config["cluster"]]
  timeout_ms = int(worker_timeout_s * 1000)
  context.context().configure_coordination_service(
      service_type="standalone",
      service_leader=f"/job:{jobs[0]}/replica:0/task:0",
      heartbeat_timeout_in_ms=int(HEARTBEAT_S * 1000),
      cluster_register_timeout_in_ms=timeout_ms,
      shutdown_barrier_timeout_in_ms=int(SHUTDOWN_S * 1000),
      coordinated_jobs=[coordination_config_pb2.CoordinatedJob(
          name=job, num_tasks=len(config["cluster"][job])) for job in jobs])
  return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


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
  strategy = tf.distribute.TPUStrategy(resolver)
  check_single_host(strategy)
  return strategy


def check_single_host(strategy: tf.distribute.Strategy) -> None:
  """Refuses a TPU strategy spanning several hosts (a pod slice).

  Its input pipelines would run on every TPU host, which has neither this
  process's Reverb server nor, necessarily, Reverb's dataset op; see
  docs/SCALING.md for the routes considered and why none is taken yet.

  Raises:
    ValueError: the strategy has more than one host.
  """
  hosts = getattr(strategy.extended, "num_hosts", 1)
  if hosts > 1:
    raise ValueError(
        f"the TPU has {hosts} hosts (a pod slice); tf_metagrad's learner "
        f"reads trajectories from the Reverb server of its own host, which "
        f"the other hosts' input pipelines cannot reach, so TPU pods are "
        f"not supported yet (docs/SCALING.md): use a single-host TPU VM, or "
        f"--strategy=multi_worker on CPU/GPU hosts")
