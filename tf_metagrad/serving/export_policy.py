"""Exports a learner's acting policy as a self-contained SavedModel.

`export(learner, spec, env_steps, path)` is what the trainer calls on its
live learner; `export_from_logdir` rebuilds a run's learner from its
run_spec.json, restores a checkpoint and exports that (the program
`tf-metagrad-export`, `tf_metagrad.programs.export`).

What the SavedModel holds is `policy_module`'s; how it replaces an earlier
export (atomically on local filesystems, with `saved_model.pb` written last
on URLs) is `atomic_dir`'s.
"""

import os
from typing import Optional, Union

import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import base as agents_base
from tf_metagrad.serving import atomic_dir
from tf_metagrad.serving import policy_module

# Where a run's policy is exported by default (LOGDIR/saved_model).
DEFAULT_OUTPUT = "saved_model"


def export(learner: agents_base.Learner, spec: runs.RunSpec,
           env_steps: Union[int, tf.Tensor, tf.Variable],
           output_dir: str) -> str:
  """Exports `learner`'s acting policy (head 0) as a SavedModel.

  Args:
    learner: a learner of `tf_metagrad.agents`.
    spec: the `runs.RunSpec` the learner was built from.
    env_steps: environment steps trained on (int, tensor or variable).
    output_dir: the SavedModel directory to (re)write.

  Returns:
    `output_dir`.

  Raises:
    TypeError: if `spec` is not a `runs.RunSpec`.
    ValueError: for a network built from a nested observation spec (the
      exported signatures take one observation tensor, as every environment
      of `tf_metagrad.envs` produces).
  """
  if not isinstance(spec, runs.RunSpec):
    raise TypeError(
        f"spec must be a tf_metagrad.runs.RunSpec, got {type(spec).__name__}.")
  if learner.network.observation_leaves is not None:
    raise ValueError(
        "export supports single-tensor observations (what every "
        "tf_metagrad environment produces); this network was built from a "
        "nested observation spec.")
  steps = int(tf.convert_to_tensor(env_steps).numpy())
  module = policy_module.PolicyModule(
      learner.network, policy_module.policy_metadata(learner, spec, steps))
  atomic_dir.replace(
      output_dir,
      lambda path: tf.saved_model.save(
          module, path, signatures=module.signature_functions()),
      marker=tf.saved_model.SAVED_MODEL_FILENAME_PB)
  return output_dir


def _checkpoint_path(logdir: str, checkpoint: Optional[str]) -> str:
  """The checkpoint prefix to restore: `checkpoint`, the latest in the
  directory it names, or (None) the latest of the run's."""
  if checkpoint is None:
    path = runs.latest_checkpoint(logdir)
    if path is None:
      raise runs.RunError(
          f"No checkpoint in {os.path.join(logdir, runs.CHECKPOINT_DIR)}; "
          "train first or pass --checkpoint.")
    return path
  # A prefix first: ram:// calls any prefix of a file's name a directory.
  if (not tf.io.gfile.exists(checkpoint + ".index") and
      tf.io.gfile.isdir(checkpoint)):
    path = tf.train.latest_checkpoint(checkpoint)
    if path is None:
      raise runs.RunError(f"No checkpoint in directory {checkpoint}.")
    return path
  return checkpoint


def export_from_logdir(logdir: str, checkpoint: Optional[str] = None,
                       output: Optional[str] = None) -> str:
  """Rebuilds a run's learner, restores a checkpoint and exports it.

  Args:
    logdir: a run directory (see `tf_metagrad.runs`).
    checkpoint: a checkpoint prefix (e.g. DIR/checkpoints/ckpt-3) or a
      directory of checkpoints; default: the latest of DIR/checkpoints.
    output: SavedModel directory; default DIR/saved_model.

  Returns:
    The SavedModel directory written.

  Raises:
    runs.RunError: for a missing run directory, spec or checkpoint, a
      learner that cannot be rebuilt (e.g. the user's environment module
      is not importable here), or a checkpoint that does not fit the run.
  """
  if not tf.io.gfile.isdir(logdir):
    raise runs.RunError(f"Run directory {logdir} does not exist.")
  spec = runs.load_spec(logdir)
  path = _checkpoint_path(logdir, checkpoint)
  try:
    learner = runs.build_learner(spec)
  except (ValueError, TypeError) as error:
    # The spec was written by a trainer, so what fails here is this
    # machine's setup (mostly the run's own env module), not the spec.
    raise runs.RunError(
        f"Cannot rebuild the learner of the run in {logdir} (agent "
        f"{spec.agent}, env {spec.env}): "
        f"{str(error) or type(error).__name__}") from None
  env_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                          name="env_steps")
  runs.restore(runs.make_checkpoint(learner, env_steps=env_steps), path)
  output = output or os.path.join(logdir, DEFAULT_OUTPUT)
  return export(learner, spec, env_steps, output)
