"""The exported policy: a `tf.Module` with the policy's functions, their
signatures and the run's metadata (`PolicyModule`, `policy_metadata`).

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
expected spec (see `tf_metagrad.serving.saved_policy`). Loading needs only
TensorFlow: `tf.saved_model.load`, or
`tf_metagrad.serving.saved_policy.load_policy` for inputs checked with clear
messages.

`tf_metagrad.serving.export_policy` builds this module from a learner and
saves it.
"""

import dataclasses
import json
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import acting
from tf_metagrad.agents import base as agents_base
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.serving import saved_policy

FORMAT_VERSION = 1

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
    policy = acting.Policy(network)
    spec_message = saved_policy.observation_spec_message(shape, dtype)

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
