r"""Exports a trained policy as a self-contained SavedModel.

Usage:
  python -m export.export_policy --logdir=DIR [--checkpoint=CKPT] \
      [--output=PATH]

rebuilds the learner from DIR/run_spec.json, restores the latest checkpoint
of DIR/checkpoints (or CKPT) and writes the policy to PATH (default
DIR/saved_model). The trainer calls `export` on its live learner.

The SavedModel holds a `tf.Module` (not a Keras model): the agent network's
variables and these `tf.function`s with fixed input signatures, where
`observation` is a batch `[None, *observation_shape]` of the environment's
dtype:

  greedy_action(observation) -> action
      the most likely action: argmax of the logits, or tanh of the Gaussian
      mean; int32 `[B]` (discrete) or float32 `[B, A]` in [-1, 1] (Box).
  action(observation, seed) -> {"action", "log_prob"}
      a sampled action and its float32 log-probability `[B]`; `seed` is an
      int64 `[2]` stateless-random seed, so equal seeds give equal actions.
  get_initial_state(batch_size) -> {}
      feed-forward policies have no state.
  get_metadata() -> dict of scalars and vectors, see `METADATA_DOC`.

A recurrent policy (an LSTM core, config `core_units > 0`) carries a state
`{"core_state_0": hidden, "core_state_1": cell}`, each `[B, core_units]` of
the network's variable dtype (float32 also under bfloat16 compute), from step
to step:

  get_initial_state(batch_size) -> state
      the all-zero state. Pass it at the first step of every episode (for a
      batch of episodes that start at different times, replace the rows of
      the episodes that start with rows of this state).
  greedy_action(observation, state) -> {"action", "next_state"}
  action(observation, seed, state) -> {"action", "log_prob", "next_state"}
      as above, plus the state after `observation`, to pass with the next
      observation of the same episodes.

Signatures (for TF Serving, `saved_model_cli` and non-Python clients):
`serving_default` and `greedy_action` ({"action"}), `action`
({"action", "log_prob"}), `get_initial_state` ({}), `get_metadata`.
Recurrent policies take the state as extra inputs `core_state_0`,
`core_state_1` and return `next_core_state_0`, `next_core_state_1` next to
the action; `get_initial_state` returns {"core_state_0", "core_state_1"}.
Every function asserts the observation's shape (and the state's) in the
graph, so clients that bypass the signature check get an error naming the
expected spec (see `tf_metagrad.export.serving`). Loading needs only TensorFlow:
`tf.saved_model.load`, or `tf_metagrad.export.serving.load_policy` for inputs checked
with clear messages.

Writes are atomic on local filesystems: the SavedModel is written to
`PATH.tmp-<pid>` and renamed to PATH; an existing PATH is first renamed to
`PATH.old-<pid>` and deleted only once the new one is in place, so PATH
never holds a partial export and a failed export leaves the old one intact.
A `PATH.tmp-<pid>` whose process no longer runs (an export that was killed)
is deleted, with a warning, by the next export to PATH. (The pid is looked
up on the machine that exports: exports to one PATH from several machines
at once are not supported.)

A PATH that is a URL (gs://, ram://, file://; see `runs.is_local`) cannot
be replaced by a directory rename: object stores rename a directory object
by object, and ram:// moves only the directory's own entry. The SavedModel
is still written to `PATH.tmp-<pid>` first, so a failed save leaves the old
export intact; then the old `PATH/saved_model.pb` is deleted, the rest of
PATH after it, the new files are copied in and the new `saved_model.pb`
last (one file, which object stores show only once it is complete).
`saved_model.pb` thus marks a complete export, and PATH never holds a
loadable mix of two exports. From the deletion of the old `saved_model.pb`
to the copy of the new one, PATH holds none; a reader then, or after the
exporting process died in between, gets "SavedModel file does not exist"
from `tf.saved_model.load`, a trainer asked to resume the finished run
exports again, and the next export deletes the `PATH.tmp-<pid>` left
behind.
"""

import dataclasses
import glob
import json
import os
import sys
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tf_metagrad.export import cli
from tf_metagrad.export import serving
from tf_metagrad import runs
from tf_metagrad.agents import actor
from tf_metagrad.agents import base as agents_base
from tf_metagrad.agents import networks as networks_lib

FORMAT_VERSION = 1
# Where a run's policy is exported by default (LOGDIR/saved_model).
DEFAULT_OUTPUT = "saved_model"

METADATA_DOC = """\
format_version        int64   layout version of this export (1)
agent, env            string  agent name and environment name of the run
run_spec_json         string  the run's run_spec.json
config_json           string  the agent config (all fields) as JSON
observation_shape     int64   [rank] shape of one observation
observation_dtype     string  e.g. "float32", "uint8"
action_space          string  "Discrete(n)" or "Box(-1.0, 1.0, (A,), float32)"
action_shape          int64   [0] (discrete) or [1] = [A] (Box)
action_dtype          string  "int32" or "float32"
env_steps             int64   environment steps trained on
learner_steps         int64   learner updates taken
recurrent             bool    True if the policy carries a state
state_names           string  [k] names of the state tensors, [] when not
                              recurrent ("core_state_0", "core_state_1")
state_shape/<name>    int64   shape of one example's state tensor ([units])
state_dtype/<name>    string  its dtype, e.g. "float32"
meta_parameter_names  string  [k] names of the raw metaparameters (for FRODO
                              the meta-network weights, exported by name only)
meta_parameter_count  int64   number of scalars in the raw metaparameters
meta/<name>           float32 current value of each metaparameter, as the
                              inner loss uses it (after sigmoid / scaling;
                              vectors for per-quantile or per-head values)
"""


def _action_description(network):
  """(action space string, action shape, action dtype) of an agent network."""
  if network.num_actions is not None:
    return f"Discrete({network.num_actions})", [], tf.int32
  dim = int(network.action_dim)
  return f"Box(-1.0, 1.0, ({dim},), float32)", [dim], tf.float32


def state_specs(
    network: networks_lib.AgentNetwork) -> Dict[str, tf.TensorSpec]:
  """Batched specs of the exported state by name ({} if feed-forward).

  Names number the network's state tensors (LSTM hidden, cell) in order.
  """
  return {f"core_state_{i}": tf.TensorSpec([None] + s.shape.as_list(),
                                           s.dtype, f"core_state_{i}")
          for i, s in enumerate(network.core_state_spec())}


def policy_metadata(learner: agents_base.Learner, spec: runs.RunSpec,
                    env_steps: int) -> Dict[str, Any]:
  """The `get_metadata()` values of `learner`'s policy, as NumPy values.

  Args:
    learner: a learner of `tf_metagrad.agents`.
    spec: the run spec it was built from.
    env_steps: environment steps the run has trained on.

  Returns:
    Dict name -> str, list of str or NumPy value, documented in
    `METADATA_DOC`.
  """
  network = learner.network
  action_space, action_shape, action_dtype = _action_description(network)
  meta_params = learner.meta_params()
  metadata = {
      "format_version": np.int64(FORMAT_VERSION),
      "agent": spec.agent,
      "env": spec.env,
      "run_spec_json": spec.to_json(),
      "config_json": json.dumps(dataclasses.asdict(learner.config),
                                sort_keys=True, default=str),
      "observation_shape": np.asarray(network.observation_shape, np.int64),
      "observation_dtype": network.observation_dtype,
      "action_space": action_space,
      "action_shape": np.asarray(action_shape, np.int64),
      "action_dtype": action_dtype.name,
      "env_steps": np.int64(env_steps),
      "learner_steps": np.int64(learner.learner_steps.numpy()),
      "recurrent": np.bool_(network.recurrent),
      "state_names": list(state_specs(network)),
      "meta_parameter_names": sorted(meta_params),
      "meta_parameter_count": np.int64(
          sum(int(np.size(v)) for v in meta_params.values())),
  }
  for name, spec in state_specs(network).items():
    metadata["state_shape/" + name] = np.asarray(spec.shape[1:], np.int64)
    metadata["state_dtype/" + name] = spec.dtype.name
  for name, value in learner.meta_values().items():
    metadata["meta/" + name] = np.asarray(value, np.float32)
  return metadata


class PolicyModule(tf.Module):
  """The exported object: network variables and the policy functions.

  The network is reached only through closures, so the SavedModel tracks
  its variables (attribute `model_variables`) but not the Keras layer,
  and loading never needs the layer classes.

  Args:
    network: a built `tf_metagrad.agents.networks.AgentNetwork`.
    metadata: what `get_metadata()` returns (see `policy_metadata`).
  """

  def __init__(self, network: networks_lib.AgentNetwork,
               metadata: Dict[str, Any]) -> None:
    super().__init__(name="policy")
    self.model_variables = list(network.variables)
    shape = tuple(network.observation_shape)
    dtype = tf.as_dtype(network.observation_dtype)
    _, _, action_dtype = _action_description(network)
    policy = actor.Policy(network)
    spec_message = serving.observation_spec_message(shape, dtype)

    def checked(observation):
      # The signature already fixes shape and dtype for Python callers;
      # clients that call the graph directly are only stopped by this.
      dims = tf.shape(observation, out_type=tf.int64)
      matches = tf.cond(
          tf.equal(tf.size(dims), len(shape) + 1),
          lambda: tf.reduce_all(tf.equal(dims[1:], tf.constant(
              shape, tf.int64, shape=[len(shape)]))),
          lambda: tf.constant(False))
      check = tf.debugging.Assert(matches, [spec_message + ", got shape",
                                            dims])
      with tf.control_dependencies([check]):
        return tf.identity(observation)

    constants = dict(metadata)

    def get_metadata():
      # Strings are typed explicitly: an empty name list would be float32.
      return {k: tf.constant(v, tf.string if isinstance(v, (str, list))
                             else None) for k, v in constants.items()}

    observation_spec = tf.TensorSpec((None,) + shape, dtype, "observation")
    seed_spec = tf.TensorSpec([2], tf.int64, "seed")
    self.get_metadata = tf.function(get_metadata, input_signature=[],
                                    autograph=False)
    specs = state_specs(network)
    if specs:
      self._define_recurrent(policy, specs, checked, observation_spec,
                             seed_spec, action_dtype)
      return

    def greedy_action(observation):
      return tf.cast(policy.greedy(checked(observation)), action_dtype)

    def action(observation, seed):
      sampled, log_prob = policy.sample(checked(observation), seed)
      return {"action": tf.cast(sampled, action_dtype), "log_prob": log_prob}

    def get_initial_state(batch_size):
      del batch_size  # Feed-forward: the state is empty.
      return {}

    self.greedy_action = tf.function(greedy_action,
                                     input_signature=[observation_spec],
                                     autograph=False)
    self.action = tf.function(action,
                              input_signature=[observation_spec, seed_spec],
                              autograph=False)
    self.get_initial_state = tf.function(
        get_initial_state,
        input_signature=[tf.TensorSpec([], tf.int64, "batch_size")],
        autograph=False)
    self._greedy_signature = tf.function(
        lambda observation: {"action": self.greedy_action(observation)},
        input_signature=[observation_spec], autograph=False)
    self._action_signature = self.action

  def _define_recurrent(self, policy, specs, checked, observation_spec,
                        seed_spec, action_dtype):
    """The functions of a policy with a state (see the module docstring)."""
    names = list(specs)

    def checked_state(observation, state):
      # A state of batch 1 would broadcast against any observation batch in
      # the LSTM's gates; only this assertion stops it.
      batch = tf.shape(observation, out_type=tf.int64)[:1]
      tensors = []
      for name in names:
        spec = specs[name]
        expected = tf.concat(
            [batch, tf.constant(spec.shape[1:].as_list(), tf.int64)], 0)
        dims = tf.shape(state[name], out_type=tf.int64)
        matches = tf.cond(
            tf.equal(tf.size(dims), spec.shape.rank),
            lambda d=dims, e=expected: tf.reduce_all(tf.equal(d, e)),
            lambda: tf.constant(False))
        check = tf.debugging.Assert(matches, [
            f"state {name} must have shape [B, {spec.shape[1]}] and dtype "
            f"{spec.dtype.name} with B the observation batch; expected "
            "shape", expected, "got shape", dims])
        with tf.control_dependencies([check]):
          tensors.append(tf.identity(state[name]))
      return tuple(tensors)

    def named(state):
      return dict(zip(names, state))

    def greedy_action(observation, state):
      observation = checked(observation)
      chosen, next_state = policy.greedy_step(
          observation, checked_state(observation, state))
      return {"action": tf.cast(chosen, action_dtype),
              "next_state": named(next_state)}

    def action(observation, seed, state):
      observation = checked(observation)
      sampled, log_prob, next_state = policy.sample_step(
          observation, checked_state(observation, state), seed)
      return {"action": tf.cast(sampled, action_dtype), "log_prob": log_prob,
              "next_state": named(next_state)}

    def get_initial_state(batch_size):
      return named(policy.initial_state(batch_size))

    def flat(outputs):
      # Signatures need flat outputs: the state's tensors by their own key.
      outputs = dict(outputs)
      for name, tensor in outputs.pop("next_state").items():
        outputs["next_" + name] = tensor
      return outputs

    def greedy_signature(observation, *state):
      return flat(self.greedy_action(observation, named(state)))

    def action_signature(observation, seed, *state):
      return flat(self.action(observation, seed, named(state)))

    state_list = [specs[n] for n in names]
    self.greedy_action = tf.function(
        greedy_action, input_signature=[observation_spec, specs],
        autograph=False)
    self.action = tf.function(
        action, input_signature=[observation_spec, seed_spec,
                                 specs], autograph=False)
    self.get_initial_state = tf.function(
        get_initial_state,
        input_signature=[tf.TensorSpec([], tf.int64, "batch_size")],
        autograph=False)
    self._greedy_signature = tf.function(
        greedy_signature, input_signature=[observation_spec] + state_list,
        autograph=False)
    self._action_signature = tf.function(
        action_signature,
        input_signature=[observation_spec, seed_spec] + state_list,
        autograph=False)

  def signature_functions(self) -> Dict[str, Any]:
    """The concrete functions to save as signatures, by signature name."""
    greedy = self._greedy_signature.get_concrete_function()
    return {
        "serving_default": greedy,
        "greedy_action": greedy,
        "action": self._action_signature.get_concrete_function(),
        "get_initial_state": self.get_initial_state.get_concrete_function(),
        "get_metadata": self.get_metadata.get_concrete_function(),
    }


def _remove(path: str) -> None:
  """Deletes directory `path` and what it holds, if it exists."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    # Also raised by ram:// once everything is deleted: its listing of
    # saved_model holds the siblings whose names extend it, such as
    # saved_model.tmp-1, as if they were entries inside.
    if tf.io.gfile.glob(glob.escape(path)):
      raise


def _entries(root: str, relative: str = "") -> Iterator[Tuple[str, bool]]:
  """(path relative to `root`, is a directory) of everything under `root`,
  each directory before what it holds.

  Found with glob, which matches whole names, rather than listdir, which
  on ram:// also reports siblings whose names extend the directory's.
  """
  pattern = os.path.join(glob.escape(os.path.join(root, relative)), "*")
  for path in sorted(tf.io.gfile.glob(pattern)):
    name = os.path.join(relative, os.path.basename(path.rstrip("/")))
    is_dir = tf.io.gfile.isdir(path)
    yield name, is_dir
    if is_dir:
      yield from _entries(root, name)


def _replace_by_copy(source: str, output_dir: str) -> None:
  """Replaces `output_dir` by a copy of the SavedModel in `source`, for file
  systems without an atomic directory rename (see the module docstring)."""
  marker = tf.saved_model.SAVED_MODEL_FILENAME_PB
  try:
    tf.io.gfile.remove(os.path.join(output_dir, marker))
  except tf.errors.NotFoundError:
    pass
  _remove(output_dir)
  entries = list(_entries(source))
  tf.io.gfile.makedirs(output_dir)
  for name, is_dir in entries:
    if is_dir:
      tf.io.gfile.makedirs(os.path.join(output_dir, name))
  for name, is_dir in entries:
    if not is_dir and name != marker:
      tf.io.gfile.copy(os.path.join(source, name),
                       os.path.join(output_dir, name), overwrite=True)
  tf.io.gfile.copy(os.path.join(source, marker),
                   os.path.join(output_dir, marker), overwrite=True)


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's process.
    return True
  return True


def _remove_stale_temporaries(output_dir: str) -> None:
  """Deletes `output_dir.tmp-<pid>` directories of exports no longer running.

  A live pid may be a concurrent export to the same path, so its directory
  is left alone.
  """
  parent, name = os.path.split(output_dir)
  prefix = name + ".tmp-"
  for entry in sorted(tf.io.gfile.listdir(parent or ".")):
    entry = entry.rstrip("/")
    pid = entry[len(prefix):]
    if (not entry.startswith(prefix) or not pid.isdigit() or
        int(pid) == os.getpid() or _process_alive(int(pid))):
      continue
    path = os.path.join(parent, entry)
    logging.warning("Deleting %s: a partial export left by process %s, "
                    "which is no longer running.", path, pid)
    _remove(path)


def save_atomically(module: PolicyModule, output_dir: str) -> None:
  """`tf.saved_model.save`s `module` to `output_dir`, replacing it safely
  (atomically for a local `output_dir`; see the module docstring)."""
  output_dir = output_dir.rstrip("/")
  parent = os.path.dirname(output_dir)
  if parent:
    tf.io.gfile.makedirs(parent)
  tmp = f"{output_dir}.tmp-{os.getpid()}"
  old = f"{output_dir}.old-{os.getpid()}"
  _remove(tmp)  # Left behind by a killed export of an earlier process.
  _remove_stale_temporaries(output_dir)
  try:
    tf.saved_model.save(module, tmp, signatures=module.signature_functions())
  except BaseException:
    _remove(tmp)
    raise
  if not runs.is_local(output_dir):
    try:
      _replace_by_copy(tmp, output_dir)
    finally:
      _remove(tmp)
    return
  if not tf.io.gfile.exists(output_dir):
    tf.io.gfile.rename(tmp, output_dir)
    return
  _remove(old)
  tf.io.gfile.rename(output_dir, old)
  try:
    tf.io.gfile.rename(tmp, output_dir)
  except BaseException:
    tf.io.gfile.rename(old, output_dir)
    _remove(tmp)
    raise
  _remove(old)


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
  module = PolicyModule(learner.network,
                        policy_metadata(learner, spec, steps))
  save_atomically(module, output_dir)
  return output_dir


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
  if checkpoint is None:
    path = runs.latest_checkpoint(logdir)
    if path is None:
      raise runs.RunError(
          f"No checkpoint in {os.path.join(logdir, runs.CHECKPOINT_DIR)}; "
          "train first or pass --checkpoint.")
  # A prefix first: ram:// calls any prefix of a file's name a directory.
  elif (not tf.io.gfile.exists(checkpoint + ".index") and
        tf.io.gfile.isdir(checkpoint)):
    path = tf.train.latest_checkpoint(checkpoint)
    if path is None:
      raise runs.RunError(f"No checkpoint in directory {checkpoint}.")
  else:
    path = checkpoint
  try:
    learner = runs.build_learner(spec)
  except (ValueError, TypeError) as error:
    # The spec was written by a trainer, so what fails here is this
    # machine's setup (mostly the run's own env module), not the spec.
    raise runs.RunError(
        f"Cannot rebuild the learner of the run in {logdir} (agent "
        f"{spec.agent}, env {spec.env}): {cli.one_line(error)}") from None
  env_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                          name="env_steps")
  runs.restore(runs.make_checkpoint(learner, env_steps=env_steps), path)
  output = output or os.path.join(logdir, DEFAULT_OUTPUT)
  return export(learner, spec, env_steps, output)


def _define_flags():
  # Defined only when run as a program: the trainer imports this module and
  # has flags of its own (e.g. --logdir).
  flags.DEFINE_string("logdir", None, "Run directory (has run_spec.json).")
  flags.DEFINE_string("checkpoint", None,
                      "Checkpoint prefix or directory (default: latest).")
  flags.DEFINE_string("output", None,
                      "SavedModel directory (default: LOGDIR/saved_model).")
  flags.mark_flag_as_required("logdir")


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  options = flags.FLAGS
  if options.output is not None:
    # An existing file there would be replaced by the SavedModel directory.
    cli.writable_dir("output", options.output)
  try:
    path = export_from_logdir(options.logdir, options.checkpoint,
                              options.output)
  except runs.RunError as error:
    print(f"error: {cli.one_line(error)}", file=sys.stderr)
    return 1
  print(f"Exported the policy to {path}")
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.scripts`)."""
  _define_flags()
  cli.run(main, prefix="error: ")


if __name__ == "__main__":
  run()
