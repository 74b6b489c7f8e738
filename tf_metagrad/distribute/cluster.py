"""Who does what when the learner spans several processes.

Every distribution concern of the trainer lives here, so that the loop reads
the same for one process and for many:

- **Roles.** Under `MultiWorkerMirroredStrategy` (the cluster from
  `TF_CONFIG`) every worker runs the whole trainer: its own Reverb server,
  its own actors, its own input pipeline reading that server (its share
  of the global batch, staged on the host before each step, see
  `system.staged_input`), and it publishes weights to its own server.
  Only the chief (task "chief", else worker 0) writes the run directory:
  run_spec.json, the TensorBoard events files, the metric chunks
  (metrics/), the exported policy, evaluations.
  The others write what would go there (summaries, metrics, actor logs)
  to a scratch directory of their own, removed when the run ends well.
  Checkpoints follow TF's multi-worker rule: every worker saves at the same
  step (the chief's clock decides), the others into their scratch
  directory; everyone restores from the chief's checkpoints.
- **One stop for all.** A worker must never leave while the others wait in
  a collective. Before each learner call the workers exchange (all-reduce)
  their local verdicts - SIGTERM received, budget reached, gave up waiting
  for data - and all act on the union, so they run the same number of
  calls. The step budget is the same on every worker (the counters advance
  in the graph by the global batch's frames).
- **No step without data.** The same vote says whether every worker holds
  the call's batches (staged on the host, `system.staged_input`); if one
  does not, nobody enters the step, whose collectives would otherwise wait
  for it forever. A worker without data past `max_data_wait_s` votes
  "no_data" and all stop with the same line.
- **Lost workers.** A worker killed outright cannot vote. TensorFlow's
  coordination service notices the missing heartbeats (`heartbeat_s`, set
  in `strategies.multi_worker`) and aborts the collectives of the others
  with an UnavailableError naming the task; `lost_worker` turns that into
  one line. A run's restart resumes from the chief's last checkpoint.
- **Consistency.** At each checkpoint the workers exchange a bit-exact
  fingerprint of their learner variables (integer sums of the float bits,
  which no summation order can change) and stop if any differs.

With one process (`Cluster(strategy)` for any other strategy) every
exchange is local and free.
"""

import hashlib
import re
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

# What a worker can vote, in the order of the vote vector: reasons to stop,
# and "waiting" (it lacks the next call's batches, so no worker steps).
STOP_REASONS = ("signal", "no_data", "error", "waiting")


class DivergedError(RuntimeError):
  """Workers hold different values of variables that must be mirrored."""


def _is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _task_names(resolver) -> List[str]:
  """"chief 0", "worker 0", ... in the order of the cluster spec's tasks
  (chief first), with their addresses."""
  spec = resolver.cluster_spec()
  names = []
  for job in ("chief", "worker"):
    if job in spec.jobs:
      for index, address in enumerate(spec.job_tasks(job)):
        names.append(f"{job} {index} ({address})")
  return names


def _fingerprints(variables: Sequence[tf.Variable]) -> tf.Tensor:
  """One exact integer (as float64, below 2**31) per variable: the sum of
  its values' bit patterns modulo 2**31. Integer sums do not depend on the
  order of summation, so equal variables give equal fingerprints on any
  machine, and a changed bit changes the sum."""
  sums = []
  for v in variables:
    value = tf.convert_to_tensor(v)
    if value.dtype.is_floating:
      width = {2: tf.int16, 4: tf.int32, 8: tf.int32}[value.dtype.size]
      bits = tf.bitcast(value, width)
    else:
      bits = value
    total = tf.reduce_sum(tf.cast(tf.reshape(bits, [-1]), tf.int64))
    sums.append(tf.cast(tf.math.floormod(total, 2**31), tf.float64))
  return tf.stack(sums)


class Cluster:
  """The learner processes of a run, seen from one of them.

  Args:
    strategy: the learner's strategy; a `MultiWorkerMirroredStrategy` makes
      a multi-process cluster, anything else a cluster of one.
  """

  def __init__(self, strategy: tf.distribute.Strategy) -> None:
    self.strategy = strategy
    if _is_multi_worker(strategy):
      resolver = strategy.cluster_resolver
      self.names = _task_names(resolver)
      offset = 0
      if resolver.task_type == "worker" and "chief" in (
          resolver.cluster_spec().jobs):
        offset = len(resolver.cluster_spec().job_tasks("chief"))
      self.index = offset + int(resolver.task_id)
      self.is_chief = bool(strategy.extended.should_checkpoint)
    else:
      self.names = ["the learner"]
      self.index = 0
      self.is_chief = True
    self.num_workers = len(self.names)
    self._local_replicas = max(
        1, strategy.num_replicas_in_sync // self.num_workers)
    self._sum_fn = (tf.function(self._sum, autograph=False)
                    if self.num_workers > 1 else None)
    self._scratch: Optional[str] = None

  @property
  def name(self) -> str:
    return self.names[self.index]

  # ----------------------------------------------------------------- roles
  @property
  def writes_run_dir(self) -> bool:
    """Whether this worker writes the run directory: its spec, exported
    policy, evaluations and the checkpoints a restart resumes from (the
    chief alone; see the module docstring)."""
    return self.is_chief

  def working_dir(self, logdir: str, log: Callable[[str], None]) -> str:
    """Where this worker writes its summaries, metrics, checkpoints and
    actor logs: `logdir` for the chief, else a new scratch directory of its
    own (said on `log`; `leave` removes it)."""
    if self.writes_run_dir:
      return logdir
    self._scratch = tempfile.mkdtemp(
        prefix=f"tf_metagrad_worker{self.index}_")
    log(f"{self.name}: not the chief; scratch directory {self._scratch}")
    return self._scratch

  def checkpoints_to_keep(self, chief_keeps: int) -> int:
    """Checkpoints this worker keeps: `chief_keeps` for the chief; one for
    another worker, whose checkpoints only follow TF's rule that every
    worker saves (restarts read the chief's)."""
    return chief_keeps if self.writes_run_dir else 1

  def actor_seed(self, seed: int) -> int:
    """The run seed this worker's actors derive theirs from: each worker's
    actors act on seeds of their own."""
    return seed + 7919 * self.index

  @property
  def stages_input(self) -> bool:
    """Whether the learner's batches are staged on the host before each
    call (`system.staged_input`): several workers must all hold theirs
    before a collective step. One process reads Reverb inside the step."""
    return self.num_workers > 1

  def chief_decides(self, value: bool) -> bool:
    """The chief's `value` on every worker (a collective: for choices all
    must make alike, such as saving at this call)."""
    if self.num_workers == 1:
      return value
    return bool(self.gather([float(value)])[0, 0])

  def where(self, names: Sequence[str]) -> str:
    """" on worker ..." naming the workers `names` of a vote, for a status
    line ("" alone: there is no one else to tell apart)."""
    return f" on {', '.join(names)}" if self.num_workers > 1 else ""

  def report_fingerprint(self, variables: Sequence[tf.Variable],
                         log: Callable[[str], None]) -> None:
    """Says this worker's `digest` of `variables` on `log` (workers that
    end with the same line hold the same values; nothing alone)."""
    if self.num_workers > 1:
      log(f"{self.name}: variables fingerprint {self.digest(variables)}")

  def leave(self, chief_work: Callable[[], None]) -> None:
    """Ends a session that went well on every worker together: the chief
    runs `chief_work` (its export and evaluation), the others wait for it,
    so that no process outlives another's coordination service; another
    worker's scratch directory is removed."""
    if self.writes_run_dir:
      try:
        chief_work()
      finally:
        self.barrier()
      return
    self.barrier()
    if self._scratch is not None:
      shutil.rmtree(self._scratch, ignore_errors=True)

  # ------------------------------------------------------------- exchanges
  def _sum(self, vector: tf.Tensor) -> tf.Tensor:
    # The value is made inside the replica function: an all-reduce needs it
    # on the replica's device, and a captured host tensor has none there.
    result = self.strategy.run(
        lambda: tf.distribute.get_replica_context().all_reduce(
            "sum", tf.identity(vector)))
    return self.strategy.experimental_local_results(result)[0]

  def gather(self, values: np.ndarray) -> np.ndarray:
    """Every worker's `values` (a float64 vector of the same length on all
    workers), as a [num_workers, n] array; a collective, so every worker
    must call it the same number of times."""
    values = np.asarray(values, np.float64).reshape(-1)
    if self.num_workers == 1:
      return values[None]
    slots = np.zeros([self.num_workers, values.size])
    slots[self.index] = values
    total = self._sum_fn(tf.constant(slots.reshape(-1)))
    # Each local replica contributed the same slots.
    return (total.numpy() / self._local_replicas).reshape(slots.shape)

  def barrier(self) -> None:
    """Returns once every worker has called it (a no-op alone)."""
    if self.num_workers > 1:
      self.gather(np.zeros(1))

  def vote(self, reasons: Dict[str, bool]) -> Dict[str, List[str]]:
    """The union of the workers' stop reasons: reason -> names of the
    workers that gave it (empty lists: carry on).

    Args:
      reasons: this worker's verdict for each of `STOP_REASONS`.
    """
    unknown = set(reasons) - set(STOP_REASONS)
    if unknown:
      raise ValueError(f"unknown stop reasons {sorted(unknown)}; expected "
                       f"{STOP_REASONS}.")
    mine = [float(bool(reasons.get(r, False))) for r in STOP_REASONS]
    table = self.gather(np.array(mine))
    return {reason: [self.names[w] for w in range(self.num_workers)
                     if table[w, i] > 0.5]
            for i, reason in enumerate(STOP_REASONS)}

  def check_consistent(self, variables: Sequence[tf.Variable]) -> None:
    """Raises DivergedError unless every worker holds the same values of
    `variables` (see the module docstring)."""
    if self.num_workers == 1:
      return
    table = self.gather(_fingerprints(variables).numpy())
    differing = [v.name for i, v in enumerate(variables)
                 if np.any(table[:, i] != table[0, i])]
    if differing:
      raise DivergedError(
          f"the workers' learner variables diverged ({len(differing)} of "
          f"{len(variables)} differ, e.g. {differing[:3]}); the mirrored "
          f"updates were not applied alike, so the run stops rather than "
          f"train replicas that disagree")

  def digest(self, variables: Sequence[tf.Variable]) -> str:
    """A short hex digest of this worker's `variables` (equal on workers
    that hold equal values; printed at the end of a multi-worker run)."""
    data = _fingerprints(variables).numpy().astype(np.int64).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]

  def lost_worker(self, error: BaseException) -> Optional[str]:
    """One line naming the worker whose loss `error` reports, or None when
    `error` is not a lost peer."""
    if self.num_workers == 1 or not isinstance(
        error, (tf.errors.UnavailableError, tf.errors.AbortedError,
                tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                tf.errors.InternalError)):
      return None
    text = str(error)
    # The message names tasks as /job:J/replica:0/task:I, this worker's own
    # among them at times; the lost one is the first other task named.
    who = "a worker"
    for job, index in re.findall(r"/job:(chief|worker)/replica:\d+/task:(\d+)",
                                 text):
      prefix = f"{job} {index} "
      name = next((n for n in self.names if n.startswith(prefix)),
                  f"{job} {index}")
      if name != self.name:
        who = name
        break
    if "heartbeat" in text:
      detail = "heartbeat timeout"
    elif re.search(r"Connection reset|Socket closed|failed to connect|"
                   r"Connection refused", text):
      detail = "connection lost"
    else:
      detail = type(error).__name__
    return (f"lost {who} while {self.name} was training ({detail}); the "
            f"other workers stop too. Restart every worker with the same "
            f"flags to resume from the chief's last checkpoint")
