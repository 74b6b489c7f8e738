"""Opening a training session, up to its first learner step.

In order: what the session trains, decided and checked before anything is
written (`plan`: a finished run is then left untouched and a mismatched one
refused); a finished run's way out (`already_complete`); the record that
lets a first session that trained nothing leave the directory as it found
it (`FirstSession`); the run directory, or a worker's scratch directory
(`run_directory`); and the learner restored from the run's latest
checkpoint, with the checkpoints this worker writes (`Trainee`).
"""

import dataclasses
import os
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import base as agents_base
from tf_metagrad.distribute import cluster as cluster_lib
from tf_metagrad.distribute import strategies
from tf_metagrad.system import items
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs
from tf_metagrad.training import finish


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a session trains, decided before anything is written.

  Attributes:
    spec: the run (a resumed run's stored identity and derived config, with
      this session's run options).
    unroll: steps of one queue item (`runs.item_unroll_length`).
    stride: steps between an actor's consecutive items.
    latest: the run's latest checkpoint (None: a new run).
  """

  spec: runs.RunSpec
  unroll: int
  stride: int
  latest: Optional[str]


def _run_options(options: options_lib.Options,
                 strategy: tf.distribute.Strategy) -> Dict[str, Any]:
  """run_spec.json's descriptive record of how this session runs."""
  # Non-finite intervals ("never") as text: JSON has no infinity.
  recorded = {k: str(v) if isinstance(v, float) and not np.isfinite(v)
              else v for k, v in dataclasses.asdict(options).items()
              if k != "logdir"}
  recorded.update(strategy=strategies.name_of(strategy),
                  replicas=strategy.num_replicas_in_sync)
  recorded.update(runs.provenance())
  return recorded


def plan(spec: runs.RunSpec, options: options_lib.Options,
         strategy: tf.distribute.Strategy) -> Plan:
  """The session's `Plan`; reads the run directory, writes nothing.

  Raises:
    ValueError: if `spec` records another unroll length or batch size
      than `options`, or the stride does not fit the item.
    runs.RunError: if the directory holds another run, or checkpoints
      without a readable index.
  """
  for name in ("unroll_length", "batch_size"):
    if getattr(spec, name) not in (None, getattr(options, name)):
      raise ValueError(f"spec.{name}={getattr(spec, name)} differs from "
                       f"options.{name}={getattr(options, name)}.")
  spec = dataclasses.replace(spec, unroll_length=options.unroll_length,
                             batch_size=options.batch_size,
                             run_options=_run_options(options, strategy))
  spec = runs.resolve_spec(options.logdir, spec)
  unroll = runs.item_unroll_length(spec, options.unroll_length)
  stride = items.resolve_stride(options.unroll_stride, unroll)
  latest = runs.latest_checkpoint(options.logdir)
  runs.check_checkpoint_index(options.logdir, latest)
  return Plan(spec=spec, unroll=unroll, stride=stride, latest=latest)


def finished_env_steps(run: Plan,
                       options: options_lib.Options) -> Optional[int]:
  """The env steps of a run already trained to `options.total_env_steps`
  (None: there is training left)."""
  if not run.latest:
    return None
  done = runs.checkpoint_env_steps(run.latest)
  return done if done is not None and done >= options.total_env_steps else (
      None)


def restore_learner(spec: runs.RunSpec, strategy: tf.distribute.Strategy,
                    path: Optional[str]
                    ) -> Tuple[agents_base.Learner, tf.Variable,
                               tf.train.Checkpoint]:
  """(learner, env-step counter, their checkpoint object), restored from
  checkpoint `path` (None: fresh weights, counter 0)."""
  learner = runs.build_learner(spec, strategy=strategy)
  with strategy.scope():
    env_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                            name="env_steps")
  checkpoint = runs.make_checkpoint(learner, env_steps=env_steps)
  if path:
    runs.restore(checkpoint, path)
  return learner, env_steps, checkpoint


def already_complete(run: Plan, options: options_lib.Options, env_steps: int,
                     cluster: cluster_lib.Cluster,
                     log: Callable[[str], None]) -> Dict[str, Any]:
  """A finished run asked to train again: says so and writes nothing but a
  missing exported policy (the previous session may have been started with
  --noexport, or stopped while exporting)."""
  last_return = outputs.last_value(options.logdir, "episode_return")
  summary = {"status": "already complete", "env_steps": env_steps,
             "episode_return": last_return}
  line = (f"run in {options.logdir} already complete at {env_steps} env "
          f"steps (--total_env_steps={options.total_env_steps})")
  if options.export and cluster.writes_run_dir and not finish.has_policy(
      options.logdir):
    learner, _, _ = restore_learner(run.spec, cluster.strategy, run.latest)
    summary["saved_model"] = finish.export(learner, run.spec, env_steps,
                                            options.logdir)
    line += f"; exported its missing policy to {summary['saved_model']}"
  log(line)
  return summary


class FirstSession:
  """Undoes what the first session of a run wrote, when it made no learner
  step (no data came, a signal or an error stopped it first): such a start
  trained nothing to resume, and its run_spec.json and checkpoint at step
  0 would make the directory look like a run. Taken before anything is
  written, where no earlier session's run is (no run_spec.json, no
  checkpoint); what was there before (a folder the user made, their files)
  stays.
  """

  def __init__(self, logdir: str) -> None:
    self._logdir = logdir
    self._before = (set(tf.io.gfile.listdir(logdir))
                    if tf.io.gfile.isdir(logdir) else None)
    # The folders that creating a new local run directory creates above it
    # (runs/ of the default --logdir), deepest first.
    self._parents = []
    if self._before is None and runs.is_local(logdir):
      parent = os.path.dirname(os.path.abspath(logdir))
      while not os.path.exists(parent):
        self._parents.append(parent)
        parent = os.path.dirname(parent)

  @classmethod
  def of(cls, run: Plan, options: options_lib.Options,
         cluster: cluster_lib.Cluster) -> Optional["FirstSession"]:
    """The record for a session that writes a new run (None for a run that
    was there before, and on a worker that does not write the run)."""
    if cluster.writes_run_dir and not run.latest and not tf.io.gfile.exists(
        os.path.join(options.logdir, runs.SPEC_FILE)):
      return cls(options.logdir)
    return None

  def undo(self, log: Callable[[str], None]) -> None:
    """Removes what was not there when this was made; says so on `log`."""
    try:
      if self._before is None:
        self._remove_new_directory(log)
        return
      created = sorted(set(tf.io.gfile.listdir(self._logdir)) - self._before)
      for name in created:
        path = os.path.join(self._logdir, name)
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
      log(f"no learner step was made: removed what this session wrote to "
          f"{self._logdir} ({', '.join(created) or 'nothing'})")
    except (OSError, tf.errors.OpError) as e:
      # The session's own outcome (its error line) matters more.
      log(f"could not remove what this session wrote to {self._logdir}: "
          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

  def _remove_new_directory(self, log):
    if tf.io.gfile.exists(self._logdir):
      tf.io.gfile.rmtree(self._logdir)
    for parent in self._parents:
      if os.listdir(parent):
        break
      os.rmdir(parent)
    log(f"no learner step was made: removed the new run directory "
        f"{self._logdir}")


def run_directory(spec: runs.RunSpec, options: options_lib.Options,
                  cluster: cluster_lib.Cluster,
                  log: Callable[[str], None]) -> Tuple[runs.RunSpec, str]:
  """The session's first writes: (the spec as the run directory holds it,
  the directory this worker writes to, `Cluster.working_dir`). The worker
  that writes the run directory creates it and saves the spec there."""
  if cluster.writes_run_dir:
    tf.io.gfile.makedirs(options.logdir)
    spec = runs.check_or_save_spec(options.logdir, spec)
  return spec, cluster.working_dir(options.logdir, log)


class Trainee:
  """The learner and the env-step counter, restored from the run's latest
  checkpoint, and the checkpoints this worker writes.

  Every worker restores the chief's checkpoint (TF's multi-worker rule)
  and saves its own (`Cluster.checkpoints_to_keep`); the workers compare
  their variables before every save (`Cluster.check_consistent`).

  Args:
    spec: the run.
    logdir: the run directory (restored from).
    own_logdir: this worker's directory (saved to).
    cluster: the learner's processes.
    log: one-line logger (says where it resumed).
  """

  def __init__(self, spec: runs.RunSpec, logdir: str, own_logdir: str,
               cluster: cluster_lib.Cluster,
               log: Callable[[str], None]) -> None:
    resume_from = runs.latest_checkpoint(logdir)
    self.learner, self.env_steps, checkpoint = restore_learner(
        spec, cluster.strategy, resume_from)
    self._manager = runs.checkpoint_manager(
        own_logdir, checkpoint, max_to_keep=cluster.checkpoints_to_keep(3))
    if resume_from:
      log(f"resumed from {resume_from}: "
          f"env_steps={int(self.env_steps.numpy())} "
          f"learner_steps={int(self.learner.learner_steps.numpy())}")
    self._cluster = cluster
    # What must be equal on every worker: what the learner steps change.
    self.guarded = list(self.learner.variables) + [self.env_steps]
    cluster.check_consistent(self.guarded)

  def save(self) -> str:
    """Checks that the workers agree, then saves; returns the path."""
    self._cluster.check_consistent(self.guarded)
    return self._manager.save()
