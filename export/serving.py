"""Loading an exported policy in Python, with inputs checked against its spec.

This module needs only TensorFlow and NumPy (never `tf_metagrad`), so it runs
wherever the SavedModel is served from Python.

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
"""

import os
from typing import Any, Dict, Sequence

import numpy as np
import tensorflow as tf

# Functions every exported policy has (export.export_policy writes them).
FUNCTIONS = ("greedy_action", "action", "get_initial_state", "get_metadata")


def observation_spec_message(shape: Sequence[int], dtype) -> str:
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
  """

  def __init__(self, module, path: str):
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

  @property
  def meta_values(self) -> Dict[str, np.ndarray]:
    """Metaparameter values at export time, keyed without the "meta/"."""
    return {k[len("meta/"):]: np.asarray(v, np.float32)
            for k, v in self.metadata.items() if k.startswith("meta/")}

  def check_observation(self, observation) -> tf.Tensor:
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

  def greedy_action(self, observation) -> np.ndarray:
    """Most likely actions of a batch of observations."""
    return self.module.greedy_action(self.check_observation(observation)
                                     ).numpy()

  def action(self, observation, seed) -> Dict[str, np.ndarray]:
    """Sampled actions and their log-probabilities.

    Args:
      observation: a batch of observations.
      seed: two integers, a stateless-random seed (same seed, same
        actions).

    Returns:
      {"action": [B] or [B, A], "log_prob": [B]}.
    """
    seed = np.asarray(seed)
    if seed.shape != (2,) or not np.issubdtype(seed.dtype, np.integer):
      raise ValueError(
          f"seed must be two integers (shape [2]), got shape "
          f"{list(seed.shape)} and dtype {seed.dtype}.")
    outputs = self.module.action(self.check_observation(observation),
                                 tf.constant(seed, tf.int64))
    return {k: v.numpy() for k, v in outputs.items()}

  def get_initial_state(self, batch_size: int) -> Dict[str, np.ndarray]:
    """Initial recurrent state; {} for the feed-forward agents."""
    state = self.module.get_initial_state(tf.constant(batch_size, tf.int64))
    return {k: v.numpy() for k, v in state.items()}


def load_policy(path: str) -> LoadedPolicy:
  """Loads a SavedModel written by `export.export_policy`.

  Raises:
    FileNotFoundError: if `path` holds no SavedModel.
    ValueError: if the SavedModel is not an exported policy.
  """
  if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    raise FileNotFoundError(
        f"No SavedModel at {path} (no saved_model.pb); export one with "
        f"`python -m export.export_policy --logdir=DIR --output={path}`.")
  return LoadedPolicy(tf.saved_model.load(path), path)
