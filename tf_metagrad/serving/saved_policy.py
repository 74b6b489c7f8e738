"""Loading an exported policy in Python, with inputs checked against its spec.

This module needs only TensorFlow and NumPy (it imports nothing from
`tf_metagrad`), so a serving project without the library can vendor this one
file; the tests run a copy of it where `tf_metagrad` cannot be imported.

`load_policy(path)` wraps `tf.saved_model.load(path)`. The raw loaded object
already rejects a wrong observation, but with TensorFlow's generic "Binding
inputs to tf.function failed" TypeError; the wrapper checks first and raises
a ValueError that names the expected spec, e.g.

  ValueError: observation must have shape [None, 10, 5] and dtype float32,
  got shape [10, 5] and dtype float64 (a single observation needs a leading
  batch dimension).

Non-Python clients (TF Serving, the C++ or Java SavedModel APIs) see the
input spec in the signature (`saved_model_cli show --all`: dtype and shape
`(-1, 10, 5)`). Feeding another dtype fails in the runtime with an
INVALID_ARGUMENT error of the form "Expects arg[0] to be float but double is
provided"; another shape fails the assertion compiled into every exported
function that takes observations, an INVALID_ARGUMENT error whose message
starts with `observation_spec_message(...)` ("observation must have shape
[None, 10, 5] and dtype float32").

Recurrent policies (`metadata["recurrent"]`) carry a state: start every
episode from `get_initial_state(B)` and act with `greedy_step` /
`sample_step`, which return the state to pass with the next observation.
Those two also work for feed-forward policies (with the state {}), so a
client can act with either kind the same way.
"""

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
import tensorflow as tf

# Functions every exported policy has (`tf_metagrad.serving.policy_module`
# defines them).
FUNCTIONS = ("greedy_action", "action", "get_initial_state", "get_metadata")


def observation_spec_message(shape: Sequence[int],
                             dtype: Union[tf.DType, np.dtype, str]) -> str:
  """The start of every wrong-observation error: the spec of a batch."""
  dims = ", ".join(["None"] + [str(int(d)) for d in shape])
  return (f"observation must have shape [{dims}] and dtype "
          f"{tf.as_dtype(dtype).name}")


def _to_python(value: tf.Tensor) -> Any:
  array = np.asarray(value.numpy())
  if value.dtype == tf.string:
    if array.ndim == 0:
      return array.item().decode("utf-8")
    return [s.decode("utf-8") for s in array.reshape(-1)]
  if array.ndim == 0:
    return array.item()
  return array


class LoadedPolicy:
  """An exported policy with checked inputs and NumPy outputs.

  Attributes:
    module: the object `tf.saved_model.load` returned (its functions and
      `signatures` can be used directly).
    metadata: `get_metadata()` as Python values: strings, ints, floats,
      and NumPy arrays for non-scalar tensors (e.g. `observation_shape`,
      vector metaparameters).
    observation_shape: shape of one observation (no batch dimension).
    observation_dtype: its `tf.DType`.
    recurrent: whether the policy carries a state between steps.
    state_spec: name -> (shape of one example, `tf.DType`) of each state
      tensor; {} for a feed-forward policy.
  """

  def __init__(self, module: Any, path: str) -> None:
    missing = [f for f in FUNCTIONS if not hasattr(module, f)]
    if missing:
      raise ValueError(
          f"{path} is not a policy exported by export.export_policy: it has "
          f"no {', '.join(missing)}.")
    self.module = module
    self.metadata: Dict[str, Any] = {
        k: _to_python(v) for k, v in module.get_metadata().items()}
    self.observation_shape = tuple(
        int(d) for d in np.reshape(self.metadata["observation_shape"], -1))
    self.observation_dtype = tf.as_dtype(self.metadata["observation_dtype"])
    self.recurrent = bool(self.metadata["recurrent"])
    names = self.metadata.get("state_names", [])
    self.state_spec: Dict[str, Tuple[Tuple[int, ...], tf.DType]] = {
        name: (tuple(int(d) for d in np.reshape(
            self.metadata["state_shape/" + name], -1)),
               tf.as_dtype(self.metadata["state_dtype/" + name]))
        for name in names}

  @property
  def meta_values(self) -> Dict[str, np.ndarray]:
    """Metaparameter values at export time, keyed without the "meta/"."""
    return {k[len("meta/"):]: np.asarray(v, np.float32)
            for k, v in self.metadata.items() if k.startswith("meta/")}

  def check_observation(
      self, observation: Union[tf.Tensor, npt.ArrayLike]) -> tf.Tensor:
    """`observation` as a tensor if it is a batch of the exported spec.

    Raises:
      ValueError: for any other shape or dtype; the message names the
        expected and the actual spec.
    """
    if not isinstance(observation, (tf.Tensor, np.ndarray)):
      observation = np.asarray(observation)
    shape = tuple(observation.shape)
    dtype = tf.as_dtype(observation.dtype)
    if shape[1:] != self.observation_shape or dtype != self.observation_dtype:
      hint = ""
      if shape == self.observation_shape:
        hint = " (a single observation needs a leading batch dimension)"
      expected = observation_spec_message(self.observation_shape,
                                          self.observation_dtype)
      raise ValueError(f"{expected}, got shape {list(shape)} and dtype "
                       f"{dtype.name}{hint}.")
    return tf.convert_to_tensor(observation)

  def check_state(
      self,
      state: Optional[Mapping[str, Union[tf.Tensor, npt.ArrayLike]]],
      batch_size: int) -> Dict[str, tf.Tensor]:
    """`state` as tensors if it fits `state_spec` and the batch size.

    Raises:
      ValueError: for other names, shapes or dtypes; the message names the
        expected and the actual spec.
    """
    state = dict(state or {})
    if sorted(state) != sorted(self.state_spec):
      raise ValueError(
          f"state must have the tensors {sorted(self.state_spec)} (start an "
          f"episode from get_initial_state), got {sorted(state)}.")
    checked = {}
    for name, (shape, dtype) in self.state_spec.items():
      value = state[name]
      if not isinstance(value, (tf.Tensor, np.ndarray)):
        value = np.asarray(value)
      expected = (batch_size,) + shape
      if (tuple(value.shape) != expected or
          tf.as_dtype(value.dtype) != dtype):
        raise ValueError(
            f"state {name} must have shape {list(expected)} (batch of the "
            f"observation) and dtype {dtype.name}, got shape "
            f"{list(value.shape)} and dtype {tf.as_dtype(value.dtype).name}.")
      checked[name] = tf.convert_to_tensor(value)
    return checked

  def _check_feed_forward(self, method: str, step: str):
    if self.recurrent:
      raise ValueError(
          f"{method} needs a feed-forward policy; this one is recurrent: use "
          f"{step}(observation, ..., state) with the state of "
          "get_initial_state at episode starts.")

  def greedy_action(
      self, observation: Union[tf.Tensor, npt.ArrayLike]) -> np.ndarray:
    """Most likely actions of a batch of observations (feed-forward)."""
    self._check_feed_forward("greedy_action", "greedy_step")
    return self.module.greedy_action(self.check_observation(observation)
                                     ).numpy()

  def action(self, observation: Union[tf.Tensor, npt.ArrayLike],
             seed: npt.ArrayLike) -> Dict[str, np.ndarray]:
    """Sampled actions and their log-probabilities (feed-forward).

    Args:
      observation: a batch of observations.
      seed: two integers, a stateless-random seed (same seed, same
        actions).

    Returns:
      {"action": [B] or [B, A], "log_prob": [B]}.
    """
    self._check_feed_forward("action", "sample_step")
    return self._sample(observation, seed, {})[0]

  def greedy_step(
      self, observation: Union[tf.Tensor, npt.ArrayLike],
      state: Optional[Mapping[str, Union[tf.Tensor, npt.ArrayLike]]]
  ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """(most likely actions, next state) of any policy.

    Args:
      observation: a batch of B observations.
      state: the state before them: `get_initial_state(B)` at episode
        starts, otherwise the state the previous step returned; {} for a
        feed-forward policy.
    """
    observation = self.check_observation(observation)
    state = self.check_state(state, int(observation.shape[0]))
    if not self.recurrent:
      return self.module.greedy_action(observation).numpy(), {}
    outputs = self.module.greedy_action(observation, state)
    return outputs["action"].numpy(), {
        k: v.numpy() for k, v in outputs["next_state"].items()}

  def sample_step(
      self, observation: Union[tf.Tensor, npt.ArrayLike], seed: npt.ArrayLike,
      state: Optional[Mapping[str, Union[tf.Tensor, npt.ArrayLike]]]
  ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """({"action", "log_prob"}, next state) of any policy; see `action` and
    `greedy_step`."""
    return self._sample(observation, seed, state)

  def _sample(self, observation, seed, state):
    seed = np.asarray(seed)
    if seed.shape != (2,) or not np.issubdtype(seed.dtype, np.integer):
      raise ValueError(
          f"seed must be two integers (shape [2]), got shape "
          f"{list(seed.shape)} and dtype {seed.dtype}.")
    observation = self.check_observation(observation)
    state = self.check_state(state, int(observation.shape[0]))
    seed = tf.constant(seed, tf.int64)
    if not self.recurrent:
      outputs = self.module.action(observation, seed)
      return {k: v.numpy() for k, v in outputs.items()}, {}
    outputs = dict(self.module.action(observation, seed, state))
    next_state = {k: v.numpy() for k, v in outputs.pop("next_state").items()}
    return {k: v.numpy() for k, v in outputs.items()}, next_state

  def get_initial_state(self, batch_size: int) -> Dict[str, np.ndarray]:
    """The all-zero state of `batch_size` episodes that start; {} for a
    feed-forward policy."""
    state = self.module.get_initial_state(tf.constant(batch_size, tf.int64))
    return {k: v.numpy() for k, v in state.items()}


def load_policy(path: str) -> LoadedPolicy:
  """Loads a SavedModel written by `tf_metagrad.serving.export_policy`.

  Raises:
    FileNotFoundError: if `path` holds no SavedModel.
    ValueError: if the SavedModel is not an exported policy.
  """
  if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    raise FileNotFoundError(
        f"No SavedModel at {path} (no saved_model.pb); export one with "
        f"`tf-metagrad-export --logdir=RUN --output={path}` (in a checkout: "
        "python -m export.export_policy).")
  return LoadedPolicy(tf.saved_model.load(path), path)
