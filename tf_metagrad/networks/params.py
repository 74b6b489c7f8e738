"""Differentiable parameter substitution for Keras layers.

Meta-gradient RL (Xu et al. 2018; STAC, Zahavy et al. 2020, Algorithm 2)
evaluates the agent at updated parameters theta' = theta + Delta(eta) and
differentiates the result with respect to eta. In TF 2.15 / Keras 2 neither
`apply_gradients` nor `set_weights` is differentiable, so the layers of this
package never use their variables directly: they look every weight up through
`read(variable)`, which returns a tensor substituted for that variable when a
`substitute(...)` scope is active and the variable itself otherwise.

The substitution is plain Python state consulted when a layer's `call` runs,
so it applies to eager execution and to `tf.function` tracing alike (the
substituted tensors become part of the traced graph). Enter the scope inside
the `tf.function` that uses it: a tensor substituted outside a function is
captured as a constant at trace time, and the function does not retrace when
a different tensor is substituted later.

The stack of scopes is thread-local because `tf.distribute.MirroredStrategy`
runs each replica function in its own thread; enter the scope inside the
function passed to `strategy.run`, where the per-replica tensors live.
"""

import contextlib
import threading
from typing import Any, Iterator, List, Optional, Sequence, Union

import tensorflow as tf


class _Frame:
  """One active `substitute` scope.

  Attributes:
    mapping: variable ref -> tensor, merged with the enclosing scopes so a
      lookup is a single dict access (inner scopes override outer ones).
    own: refs substituted by this scope itself.
    read: refs looked up through `read` while this scope was active.
  """

  def __init__(self, mapping, own):
    self.mapping = mapping
    self.own = own
    self.read = set()


class _Stack(threading.local):

  def __init__(self):
    super().__init__()
    self.frames: List[_Frame] = []


_STACK = _Stack()


def read(variable: tf.Variable) -> Union[tf.Variable, tf.Tensor]:
  """Returns the active substitute for `variable`, else the variable itself.

  Args:
    variable: a `tf.Variable` owned by a layer.

  Returns:
    The tensor substituted for `variable` by the innermost active
    `substitute` scope of the current thread, or `variable`.
  """
  frames = _STACK.frames
  if not frames:
    return variable
  ref = variable.ref()
  value = frames[-1].mapping.get(ref)
  if value is None:
    return variable
  for frame in frames:
    frame.read.add(ref)
  return value


def _shape_str(shape: tf.TensorShape) -> str:
  if shape.rank is None:
    return 'unknown rank'
  return str([d if d is not None else '?' for d in shape.as_list()])


def _as_substitute(value):
  if isinstance(value, tf.Variable) or tf.is_tensor(value):
    return value
  return tf.convert_to_tensor(value)


@contextlib.contextmanager
def substitute(variables: Sequence[tf.Variable],
               tensors: Sequence[Any]) -> Iterator[None]:
  """Makes `read(variables[i])` return `tensors[i]` inside the scope.

  Args:
    variables: the variables to replace.
    tensors: replacements aligned with `variables` (tensors, variables or
      array-likes); each must have its variable's dtype and a shape
      compatible with (equal to, when fully known) its variable's shape.

  Yields:
    Nothing; the substitution is active until the scope exits. Scopes nest:
    an inner scope overrides the outer ones for the variables it names.

  Raises:
    ValueError: if the lengths differ, or a tensor's shape or dtype does not
      match its variable's (the message names the variable).
  """
  variables = list(variables)
  tensors = list(tensors)
  if len(variables) != len(tensors):
    raise ValueError(
        f'substitute got {len(variables)} variables but {len(tensors)} '
        f'tensors; `tensors` must be aligned with `variables`.')
  frames = _STACK.frames
  mapping = dict(frames[-1].mapping) if frames else {}
  own = set()
  for variable, value in zip(variables, tensors):
    value = _as_substitute(value)
    want_dtype = variable.dtype.base_dtype
    if value.dtype.base_dtype != want_dtype:
      raise ValueError(
          f'Substitute for variable {variable.name!r} must have dtype '
          f'{want_dtype.name}, got {value.dtype.base_dtype.name}.')
    if not value.shape.is_compatible_with(variable.shape):
      raise ValueError(
          f'Substitute for variable {variable.name!r} must have shape '
          f'{_shape_str(variable.shape)}, got {_shape_str(value.shape)}.')
    ref = variable.ref()
    mapping[ref] = value
    own.add(ref)
  frame = _Frame(mapping, own)
  frames.append(frame)
  try:
    yield
  finally:
    # Pop by identity: a generator-based scope may be exited out of order if
    # the caller interleaves scopes manually, and the frame must still go.
    for i in range(len(frames) - 1, -1, -1):
      if frames[i] is frame:
        del frames[i]
        break


def call_with_weights(model: tf.keras.layers.Layer,
                      weights: Optional[Sequence[Any]], *args: Any,
                      **kwargs: Any) -> Any:
  """Calls `model(*args, **kwargs)` with `weights` as its trainable variables.

  This is how theta' (tensors) is plugged into a network: gradients of the
  outputs flow to `weights` (and through them to whatever produced them, e.g.
  eta in a meta-gradient).

  Args:
    model: a built Keras layer or model whose weights are all read through
      `read` (every layer of `tf_metagrad.networks`).
    weights: a list aligned with `model.trainable_variables`, or None to use
      the variables themselves.
    *args: positional arguments of the model call.
    **kwargs: keyword arguments of the model call.

  Returns:
    Whatever the model call returns.

  Raises:
    ValueError: if `weights` does not match `model.trainable_variables` (see
      `substitute`), or if the call did not read some of the substituted
      variables (e.g. a Keras built-in layer whose weights cannot be
      substituted), which would silently cut the gradient to them. To call a
      model that legitimately leaves some of its weights unused, enter
      `substitute(model.trainable_variables, weights)` and call it directly.
  """
  if weights is None:
    return model(*args, **kwargs)
  variables = model.trainable_variables
  weights = list(weights)
  if not model.built and not variables:
    raise ValueError(
        f'call_with_weights needs a built model: {model.name!r} has no '
        f'variables yet, but {len(weights)} weights were given. Call '
        f'`model.build(input_shape)` or the model once first.')
  with substitute(variables, weights):
    frame = _STACK.frames[-1]
    outputs = model(*args, **kwargs)
  unread = [v.name for v in variables if v.ref() not in frame.read]
  if unread:
    raise ValueError(
        f'call_with_weights: the call of {model.name!r} did not read '
        f'{len(unread)} of its {len(variables)} trainable variables through '
        f'tf_metagrad.networks.params.read, so their substitutes had no '
        f'effect: {unread[:5]}. Use tf_metagrad layers (not Keras built-in '
        f'ones) for every weight.')
  return outputs


def build_sublayer(layer: tf.keras.layers.Layer,
                   input_shape: Union[tf.TensorShape,
                                      Sequence[Optional[int]]]) -> None:
  """Builds `layer` (a sublayer, from its parent's `build`) under its name.

  Keras 2 enters a layer's name scope only when the layer builds itself on
  its first call; a parent that builds its sublayers directly would give
  every sublayer's weights the same bare names (`kernel:0`), and H5 files
  need names unique within a model. Inside the parent's scope this gives
  e.g. `torso/mlp/linear_0/kernel:0`.

  Args:
    layer: the sublayer.
    input_shape: the shape to build it for.
  """
  with tf.name_scope(layer.name):
    layer.build(input_shape)


class ParamLayer(tf.keras.layers.Layer):
  """Base class of layers whose weights can be substituted.

  Subclasses create their weights with `add_weight` and, in `call`, fetch
  them with `self.param(variable)` instead of using the variable, so that
  `substitute` / `call_with_weights` can replace them by tensors.
  """

  def param(self, variable: tf.Variable) -> Union[tf.Variable, tf.Tensor]:
    """`read(variable)` in this layer's compute dtype."""
    value = read(variable)
    if value.dtype.base_dtype != self.compute_dtype:
      value = tf.cast(value, self.compute_dtype)
    return value
