"""A training run on disk: its spec, its checkpoints, rebuilding its learner.

Layout of a run directory (written by `trainers.train`, read by the export
tools and by a resumed trainer):

  DIR/run_spec.json        what was trained (agent, env, overrides, seed,
                           unroll length, batch size) and how (run options,
                           package version, git commit)
  DIR/checkpoints/         `tf.train.CheckpointManager` checkpoints of the
                           learner (network, optimizer and meta-optimizer
                           state, metaparameters, step counters) and the
                           trainer's env-step counter
  DIR/saved_model/         the exported policy (export.export_policy)

Checkpoints are written by TensorFlow to temporary files and only then
registered in the `checkpoint` index file, so a process killed mid-write
leaves the previous checkpoint as the latest valid one.

DIR may be any `tf.io.gfile` path (a local folder, gs://, ram://...): its
files are read and written through `tf.io.gfile` or TensorFlow's own file
system layer (checkpoints, summaries, SavedModels). Where local and other
file systems differ (the export's atomic replace, the actor processes' logs)
the code asks `is_local`.
"""

import dataclasses
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

import gymnasium
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import envs
from tf_metagrad import version
from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import base as agents_base
from tf_metagrad.agents import config as config_lib

SPEC_FILE = "run_spec.json"
CHECKPOINT_DIR = "checkpoints"


class RunError(RuntimeError):
  """A run directory is missing, incomplete or incompatible."""


def is_local(path: str) -> bool:
  """True for a plain local path, False for a URL (gs://, ram://, file://).

  Only for plain paths does the code rely on an atomic directory rename
  (object stores rename a directory object by object, ram:// moves only
  the directory's own entry) or hand a child process a file of the run
  directory as its output. file:// URLs take the other way too: `open`
  cannot open them.
  """
  return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path) is None


@dataclasses.dataclass
class RunSpec:
  """What a run trains; enough to rebuild its learner and environment.

  `derived_config` holds config values the trainer computes from other
  settings (the learning-rate `decay_steps` from --total_env_steps). They
  are not part of what identifies a run: a resume may ask for more steps,
  and then reuses the stored values so that the schedule it resumes in the
  middle of does not change (see `check_or_save_spec`).

  `unroll_length` and `batch_size` change the learning problem, so they are
  part of the identity; None means "not recorded" (specs written before
  they were stored, and specs built by tools that only rebuild the learner).
  `run_options` describes how the run was carried out (its length, actors,
  strategy, package version, git commit...): recorded, never compared, and
  updated by each resumed session.
  """

  agent: str
  env: str
  config_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
  env_kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
  seed: int = 0
  derived_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
  unroll_length: Optional[int] = None
  batch_size: Optional[int] = None
  run_options: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def config(self) -> Dict[str, Any]:
    """The agent config fields: overrides plus derived values."""
    return dict(self.config_overrides, **self.derived_config)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str, source: str = "run spec") -> "RunSpec":
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise RunError(f"{source} is not valid JSON: {e}") from e
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(data, dict) or not {"agent", "env"} <= set(data):
      raise RunError(f"{source} must be a JSON object with 'agent' and 'env'.")
    unknown = sorted(set(data) - fields)
    if unknown:
      raise RunError(f"{source} has unknown fields {unknown}.")
    # JSON has no tuples; config fields that are tuples come back as lists.
    untuple = lambda d: {k: tuple(v) if isinstance(v, list) else v
                         for k, v in d.items()}
    return cls(**dict(
        data, config_overrides=untuple(data.get("config_overrides", {})),
        derived_config=untuple(data.get("derived_config", {}))))


def save_spec(logdir: str, spec: RunSpec) -> None:
  """Writes DIR/run_spec.json atomically (temp file + rename)."""
  tf.io.gfile.makedirs(logdir)
  path = os.path.join(logdir, SPEC_FILE)
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(spec.to_json())
  tf.io.gfile.rename(tmp, path, overwrite=True)


def load_spec(logdir: str) -> RunSpec:
  path = os.path.join(logdir, SPEC_FILE)
  if not tf.io.gfile.exists(path):
    raise RunError(
        f"{path} does not exist: {logdir!r} is not a tf_metagrad run "
        f"directory (expected one written by trainers.train).")
  with tf.io.gfile.GFile(path) as f:
    return RunSpec.from_json(f.read(), source=path)


# Recorded but not compared on resume (see RunSpec).
_DESCRIPTIVE = ("derived_config", "run_options")
# Identity fields that specs written before they existed leave as None.
_OPTIONAL_IDENTITY = ("unroll_length", "batch_size")


def resolve_spec(logdir: str, spec: RunSpec) -> RunSpec:
  """The spec to train in `logdir`, checked against a stored one; no writes.

  Fields in `_DESCRIPTIVE` are left out of the comparison, and so are
  `unroll_length` / `batch_size` where either side did not record them.

  Returns:
    `spec` for a new run; for a resumed run the stored identity and
    `derived_config`, with `spec`'s `run_options` and any identity field
    the stored spec had not recorded.

  Raises:
    RunError: naming the fields that differ, so a resumed run cannot
      silently continue with another agent, environment or config.
  """
  if not tf.io.gfile.exists(os.path.join(logdir, SPEC_FILE)):
    return spec
  stored = load_spec(logdir)
  diffs = []
  for f in dataclasses.fields(RunSpec):
    old, new = getattr(stored, f.name), getattr(spec, f.name)
    if f.name in _DESCRIPTIVE or old == new or (
        f.name in _OPTIONAL_IDENTITY and None in (old, new)):
      continue
    diffs.append(f"{f.name}: stored {old!r}, requested {new!r}")
  if diffs:
    raise RunError(
        f"{logdir} already holds a different run ({'; '.join(diffs)}); "
        f"resume it with the same flags or use another --logdir.")
  filled = {name: getattr(spec, name) for name in _OPTIONAL_IDENTITY
            if getattr(stored, name) is None}
  return dataclasses.replace(stored, run_options=dict(spec.run_options),
                             **filled)


def check_or_save_spec(logdir: str, spec: RunSpec) -> RunSpec:
  """`resolve_spec`, then saves the result when it differs from the file
  (a new run, or a resume that updated the descriptive fields)."""
  resolved = resolve_spec(logdir, spec)
  path = os.path.join(logdir, SPEC_FILE)
  if not tf.io.gfile.exists(path) or load_spec(logdir) != resolved:
    save_spec(logdir, resolved)
  return resolved


def provenance() -> Dict[str, Optional[str]]:
  """The package version and git commit (`tf_metagrad.version`, which the
  programs' --version reads without importing TensorFlow)."""
  return version.provenance()


def checkpoint_env_steps(path: str) -> Optional[int]:
  """The trainer's env-step counter stored in checkpoint `path`, read
  without building a learner (None: the checkpoint has no such counter)."""
  key = "env_steps/.ATTRIBUTES/VARIABLE_VALUE"
  try:
    # Not tf.train.load_variable: it first asks whether `path` is a
    # directory, which ram:// answers yes for any prefix of a file name
    # (ckpt-1 of ckpt-1.index), and then looks for checkpoints inside it.
    reader = tf.compat.v1.train.NewCheckpointReader(path)
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else None
  except (tf.errors.OpError, ValueError) as e:
    raise RunError(f"Checkpoint {path} is corrupt or unreadable: "
                   f"{type(e).__name__}: {str(e).splitlines()[0]}") from None


def agent_config(spec: RunSpec) -> config_lib.AgentConfig:
  """The validated agent config of a run."""
  return agents.make_config(spec.agent, **dict(spec.config(), seed=spec.seed))


def make_env(spec: RunSpec, seed: Optional[int] = None,
             **extra: Any) -> gymnasium.Env:
  return envs.make(spec.env, seed=spec.seed if seed is None else seed,
                   **dict(spec.env_kwargs, **extra))


def env_specs(spec: RunSpec) -> Tuple[Any, gymnasium.spaces.Space]:
  """The run's environment's observation spec and action space (an
  environment is made to read them and closed again)."""
  env = make_env(spec)
  try:
    return env.observation_spec, env.action_space
  finally:
    env.close()


def item_unroll_length(spec: RunSpec, unroll_length: int) -> int:
  """Steps of one queue item of the run: `unroll_length` times the agent's
  `unrolls_per_item` (FRODO reads M+1 consecutive unrolls per step)."""
  return unroll_length * agent_config(spec).unrolls_per_item()


def build_learner(spec: RunSpec,
                  strategy: Optional[tf.distribute.Strategy] = None
                  ) -> actor_critic.ActorCriticLearner:
  """The learner a run spec describes (fresh weights, nothing restored)."""
  observation_spec, action_space = env_specs(spec)
  return agents.make_learner(spec.agent, observation_spec, action_space,
                             strategy=strategy,
                             **dict(spec.config(), seed=spec.seed))


def make_checkpoint(learner: agents_base.Learner,
                    **counters: tf.Variable) -> tf.train.Checkpoint:
  """The checkpoint object of a run: the learner plus trainer counters."""
  return tf.train.Checkpoint(learner=learner, **counters)


def checkpoint_manager(logdir: str, checkpoint: tf.train.Checkpoint,
                       max_to_keep: int = 3) -> tf.train.CheckpointManager:
  return tf.train.CheckpointManager(
      checkpoint, os.path.join(logdir, CHECKPOINT_DIR),
      max_to_keep=max_to_keep)


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
  """Restores `path` into `checkpoint`, with errors that name the file.

  Raises:
    RunError: if the checkpoint is missing, unreadable (corrupt), or does
      not fit the learner (another agent, network or environment).
  """
  if not tf.io.gfile.exists(path + ".index"):
    raise RunError(f"Checkpoint {path} does not exist (no {path}.index).")
  checkpoint.save_counter  # pylint: disable=pointless-statement
  # (creates the counter, so a complete restore consumes every value)
  try:
    status = checkpoint.read(path)
  except (tf.errors.OpError, IndexError) as e:
    # TensorFlow reports truncated or garbled files as DataLossError or
    # IndexError ("Read less bytes than requested").
    raise RunError(
        f"Checkpoint {path} is corrupt or unreadable: "
        f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
  except ValueError as e:  # A shape or dtype that does not fit.
    raise RunError(
        f"Checkpoint {path} does not fit this learner (was it written for "
        f"another agent, network or environment?): "
        f"{str(e).splitlines()[0][:300]}") from None
  try:
    status.assert_consumed()
  except (AssertionError, ValueError) as e:
    status.expect_partial()
    raise RunError(
        f"Checkpoint {path} does not fit this learner (was it written for "
        f"another agent, network or environment?): "
        f"{str(e).splitlines()[0][:300]}") from None


def check_checkpoint_index(logdir: str, latest: Optional[str]) -> None:
  """Refuses to start over a run whose checkpoint index is unreadable.

  Args:
    logdir: the run directory.
    latest: the latest checkpoint the `CheckpointManager` found (None: none).

  Raises:
    RunError: if checkpoints (ckpt-*.index) exist but `latest` is None,
      which means the `checkpoint` index file is missing or corrupt; training
      from step 0 would then overwrite them.
  """
  directory = os.path.join(logdir, CHECKPOINT_DIR)
  if latest or not tf.io.gfile.isdir(directory):
    return
  found = sorted(tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")))
  if found:
    index = os.path.join(directory, "checkpoint")
    raise RunError(
        f"Checkpoint index {index} is missing or corrupt but "
        f"{len(found)} checkpoint(s) exist (e.g. {found[-1][:-len('.index')]}"
        f"); refusing to restart from step 0 over them. Restore the index "
        f"(a text file: model_checkpoint_path: \"ckpt-N\") or use another "
        f"--logdir.")


def latest_checkpoint(logdir: str) -> Optional[str]:
  return tf.train.latest_checkpoint(os.path.join(logdir, CHECKPOINT_DIR))
