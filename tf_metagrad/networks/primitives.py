"""Substitutable building blocks: dense, convolution and LSTM layers.

Every weight is fetched through `params.read` (via `ParamLayer.param`), so
these layers can be evaluated at parameters given as tensors (see
`params.call_with_weights`). Keras' built-in Dense/Conv2D/LSTM cannot be used
in our networks because they read their variables directly.
"""

from typing import (Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import tensorflow as tf

from tf_metagrad.networks import params

_register = tf.keras.utils.register_keras_serializable(package='tf_metagrad')

# What Keras accepts for an activation and for an initializer.
Activation = Union[None, str, Dict[str, Any],
                   Callable[[tf.Tensor], tf.Tensor]]
Initializer = Union[str, Dict[str, Any], tf.keras.initializers.Initializer]


def _last_dim(input_shape, layer: str, arg: str = 'inputs') -> int:
  shape = tf.TensorShape(input_shape)
  if shape.rank is None or shape[-1] is None:
    raise ValueError(
        f'{layer} needs the last dimension of `{arg}` to be known when it is '
        f'built, got shape {shape}.')
  return int(shape[-1])


def _initializer_config(initializer):
  return tf.keras.initializers.serialize(initializer)


@_register
class Linear(params.ParamLayer):
  """Affine map y = activation(x W + b) over the last axis of `x`.

  Args:
    units: output size.
    activation: a Keras activation name or callable (None: identity).
    use_bias: whether to add a bias.
    kernel_initializer: Keras initializer of W `[in, units]`.
    bias_initializer: Keras initializer of b `[units]`.
    **kwargs: Keras layer arguments (name, dtype, ...).
  """

  def __init__(self, units: int,
               activation: Activation = None,
               use_bias: bool = True,
               kernel_initializer: Initializer = 'glorot_uniform',
               bias_initializer: Initializer = 'zeros',
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if int(units) < 1:
      raise ValueError(f'Linear units must be >= 1, got {units}.')
    self.units = int(units)
    self.activation = tf.keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    fan_in = _last_dim(input_shape, 'Linear')
    self.kernel = self.add_weight(
        name='kernel', shape=(fan_in, self.units),
        initializer=self.kernel_initializer, trainable=True)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(
          name='bias', shape=(self.units,), initializer=self.bias_initializer,
          trainable=True)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    inputs = tf.cast(inputs, self.compute_dtype)
    kernel = self.param(self.kernel)
    if inputs.shape.rank == 2:
      outputs = tf.matmul(inputs, kernel)
    else:
      outputs = tf.tensordot(inputs, kernel, axes=[[-1], [0]])
    if self.use_bias:
      outputs = outputs + self.param(self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs

  def compute_output_shape(
      self, input_shape: Union[tf.TensorShape, Sequence[Optional[int]]]
  ) -> tf.TensorShape:
    return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
        units=self.units,
        activation=tf.keras.activations.serialize(self.activation),
        use_bias=self.use_bias,
        kernel_initializer=_initializer_config(self.kernel_initializer),
        bias_initializer=_initializer_config(self.bias_initializer))
    return config


@_register
class Conv2D(params.ParamLayer):
  """2-D convolution over NHWC inputs via `tf.nn.conv2d`.

  Args:
    filters: number of output channels.
    kernel_size: int or (height, width).
    strides: int or (height, width).
    padding: 'SAME' or 'VALID' (case-insensitive).
    activation: Keras activation name or callable (None: identity).
    use_bias: whether to add a per-channel bias.
    kernel_initializer: Keras initializer of the `[kh, kw, in, filters]`
      kernel.
    bias_initializer: Keras initializer of the `[filters]` bias.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, filters: int, kernel_size: Union[int, Sequence[int]] = 3,
               strides: Union[int, Sequence[int]] = 1, padding: str = 'SAME',
               activation: Activation = None,
               use_bias: bool = True,
               kernel_initializer: Initializer = 'glorot_uniform',
               bias_initializer: Initializer = 'zeros',
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if int(filters) < 1:
      raise ValueError(f'Conv2D filters must be >= 1, got {filters}.')
    self.filters = int(filters)
    self.kernel_size = _pair(kernel_size, 'kernel_size')
    self.strides = _pair(strides, 'strides')
    padding = str(padding).upper()
    if padding not in ('SAME', 'VALID'):
      raise ValueError(
          f"Conv2D padding must be 'SAME' or 'VALID', got {padding!r}.")
    self.padding = padding
    self.activation = tf.keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    shape = tf.TensorShape(input_shape)
    if shape.rank != 4:
      raise ValueError(
          f'Conv2D expects inputs [B, H, W, C], got shape {shape}.')
    channels = _last_dim(shape, 'Conv2D')
    self.kernel = self.add_weight(
        name='kernel', shape=self.kernel_size + (channels, self.filters),
        initializer=self.kernel_initializer, trainable=True)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(
          name='bias', shape=(self.filters,),
          initializer=self.bias_initializer, trainable=True)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    inputs = tf.cast(inputs, self.compute_dtype)
    outputs = tf.nn.conv2d(inputs, self.param(self.kernel),
                           strides=(1,) + self.strides + (1,),
                           padding=self.padding)
    if self.use_bias:
      outputs = outputs + self.param(self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs

  def compute_output_shape(
      self, input_shape: Union[tf.TensorShape, Sequence[Optional[int]]]
  ) -> tf.TensorShape:
    shape = tf.TensorShape(input_shape)
    spatial = []
    for size, k, s in zip(shape[1:3], self.kernel_size, self.strides):
      spatial.append(conv_output_size(size, k, s, self.padding))
    return tf.TensorShape([shape[0]] + spatial + [self.filters])

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
        filters=self.filters,
        kernel_size=self.kernel_size,
        strides=self.strides,
        padding=self.padding,
        activation=tf.keras.activations.serialize(self.activation),
        use_bias=self.use_bias,
        kernel_initializer=_initializer_config(self.kernel_initializer),
        bias_initializer=_initializer_config(self.bias_initializer))
    return config


def _pair(value, name: str) -> Tuple[int, int]:
  if isinstance(value, int):
    pair = (value, value)
  else:
    pair = tuple(int(v) for v in value)
  if len(pair) != 2 or min(pair) < 1:
    raise ValueError(f'{name} must be a positive int or a pair of them, got '
                     f'{value!r}.')
  return pair


def conv_output_size(size: Optional[int], kernel: int, stride: int,
                     padding: str) -> Optional[int]:
  """Output length of a convolution or pooling along one spatial axis."""
  if size is None:
    return None
  if padding == 'SAME':
    return -(-int(size) // stride)
  return -(-(int(size) - kernel + 1) // stride)


class LSTMState(NamedTuple):
  """Recurrent state of an LSTM: hidden output h and cell c, each `[B, H]`."""

  hidden: tf.Tensor
  cell: tf.Tensor


@_register
class LSTMCell(params.ParamLayer):
  """One step of a standard LSTM (Hochreiter & Schmidhuber 1997).

  Gates (input i, forget f, candidate g, output o, in that column order):
      [i, f, g, o] = x W_x + h W_h + b
      c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(g)
      h' = sigmoid(o) * tanh(c')
  The bias is initialised to zero and the forget bias (1.0) is a constant
  added to the forget gate, so a freshly initialised cell keeps most of its
  memory; the constant is not a weight and is not substituted.

  Args:
    units: hidden size H.
    forget_bias: constant added to the forget-gate pre-activation.
    kernel_initializer: initializer of W_x `[F, 4H]`.
    recurrent_initializer: initializer of W_h `[H, 4H]`.
    bias_initializer: initializer of b `[4H]`.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, units: int, forget_bias: float = 1.0,
               kernel_initializer: Initializer = 'glorot_uniform',
               recurrent_initializer: Union[
                   str, Dict[str, Any],
                   tf.keras.initializers.Initializer] = 'orthogonal',
               bias_initializer: Initializer = 'zeros',
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if int(units) < 1:
      raise ValueError(f'LSTMCell units must be >= 1, got {units}.')
    self.units = int(units)
    self.forget_bias = float(forget_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.recurrent_initializer = tf.keras.initializers.get(
        recurrent_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    features = _last_dim(input_shape, 'LSTMCell')
    self.kernel = self.add_weight(
        name='kernel', shape=(features, 4 * self.units),
        initializer=self.kernel_initializer, trainable=True)
    self.recurrent_kernel = self.add_weight(
        name='recurrent_kernel', shape=(self.units, 4 * self.units),
        initializer=self.recurrent_initializer, trainable=True)
    self.bias = self.add_weight(
        name='bias', shape=(4 * self.units,),
        initializer=self.bias_initializer, trainable=True)
    super().build(input_shape)

  def initial_state(self, batch_size: Union[int, tf.Tensor]) -> LSTMState:
    """All-zero state for `batch_size` sequences."""
    zeros = tf.zeros(tf.stack([batch_size, self.units]), self.compute_dtype)
    return LSTMState(zeros, zeros)

  def input_projection(self, inputs: tf.Tensor) -> tf.Tensor:
    """x W_x + b for any leading shape (hoisted out of time loops)."""
    inputs = tf.cast(inputs, self.compute_dtype)
    kernel = self.param(self.kernel)
    if inputs.shape.rank == 2:
      projected = tf.matmul(inputs, kernel)
    else:
      projected = tf.tensordot(inputs, kernel, axes=[[-1], [0]])
    return projected + self.param(self.bias)

  def step_projected(self, projected: tf.Tensor,
                     state: LSTMState) -> LSTMState:
    """One step given the precomputed input projection `[B, 4H]`."""
    hidden, cell = state
    gates = projected + tf.matmul(hidden, self.param(self.recurrent_kernel))
    i, f, g, o = tf.split(gates, 4, axis=-1)
    cell = tf.sigmoid(f + self.forget_bias) * cell + tf.sigmoid(i) * tf.tanh(g)
    hidden = tf.sigmoid(o) * tf.tanh(cell)
    return LSTMState(hidden, cell)

  def call(self, inputs: tf.Tensor, state: Optional[LSTMState] = None
           ) -> Tuple[tf.Tensor, LSTMState]:
    """One step: inputs `[B, F]`, state -> (output `[B, H]`, new state)."""
    inputs = tf.cast(inputs, self.compute_dtype)
    if state is None:
      state = self.initial_state(tf.shape(inputs)[0])
    state = LSTMState(*[tf.cast(s, self.compute_dtype) for s in state])
    new_state = self.step_projected(self.input_projection(inputs), state)
    return new_state.hidden, new_state

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
        units=self.units,
        forget_bias=self.forget_bias,
        kernel_initializer=_initializer_config(self.kernel_initializer),
        recurrent_initializer=_initializer_config(self.recurrent_initializer),
        bias_initializer=_initializer_config(self.bias_initializer))
    return config


def reset_state(state: LSTMState, reset: tf.Tensor) -> LSTMState:
  """Zeroes the rows of `state` where the bool `[B]` `reset` is True."""
  keep = tf.logical_not(reset)[:, None]
  return LSTMState(*[tf.where(keep, s, tf.zeros_like(s)) for s in state])


@_register
class StaticLSTM(params.ParamLayer):
  """An `LSTMCell` unrolled over a time-major sequence `[T, B, F]`.

  When T is known when the call is traced the unroll is a Python loop (best
  for XLA and for short learner unrolls); otherwise it is a `tf.scan`.

  Args:
    units: hidden size H.
    reverse: run from t = T-1 down to 0 (outputs are still indexed by t).
    forget_bias: see `LSTMCell`.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, units: int, reverse: bool = False,
               forget_bias: float = 1.0, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.units = int(units)
    self.reverse = bool(reverse)
    self.forget_bias = float(forget_bias)
    self.cell = LSTMCell(self.units, forget_bias=self.forget_bias,
                         dtype=self.dtype_policy, name='cell')

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    shape = tf.TensorShape(input_shape)
    if shape.rank != 3:
      raise ValueError(
          f'StaticLSTM expects time-major inputs [T, B, F], got shape {shape}.')
    params.build_sublayer(self.cell, shape[1:])
    super().build(input_shape)

  def initial_state(self, batch_size: Union[int, tf.Tensor]) -> LSTMState:
    """All-zero state for `batch_size` sequences."""
    return self.cell.initial_state(batch_size)

  def call(self, inputs: tf.Tensor,
           initial_state: Optional[LSTMState] = None,
           reset: Optional[tf.Tensor] = None
           ) -> Tuple[tf.Tensor, LSTMState]:
    """Runs the LSTM over the sequence.

    Args:
      inputs: `[T, B, F]`.
      initial_state: `LSTMState` of `[B, H]` tensors (zeros if None); the
        state before the first processed step (t = 0, or t = T-1 when
        `reverse`).
      reset: optional bool `[T, B]`; where `reset[t, b]` is True the state of
        sequence b is zeroed before step t is processed (in processing order,
        so with `reverse` it cuts what was accumulated from steps > t).

    Returns:
      (outputs `[T, B, H]`, final state after the last processed step).
    """
    inputs = tf.cast(inputs, self.compute_dtype)
    if inputs.shape.rank != 3:
      raise ValueError(f'StaticLSTM `inputs` must be [T, B, F], got shape '
                       f'{inputs.shape}.')
    if initial_state is None:
      initial_state = self.initial_state(tf.shape(inputs)[1])
    state = LSTMState(
        *[tf.cast(s, self.compute_dtype) for s in initial_state])
    if reset is not None:
      reset = tf.cast(reset, tf.bool)
      if reset.shape.rank != 2:
        raise ValueError(f'StaticLSTM `reset` must be [T, B], got shape '
                         f'{reset.shape}.')
    projected = self.cell.input_projection(inputs)
    num_steps = inputs.shape[0]
    if num_steps == 0:
      raise ValueError('StaticLSTM `inputs` must have at least one time step.')
    if num_steps is not None:
      return self._unroll_static(projected, state, reset, int(num_steps))
    return self._unroll_scan(projected, state, reset)

  def _unroll_static(self, projected, state, reset, num_steps):
    order = range(num_steps - 1, -1, -1) if self.reverse else range(num_steps)
    outputs = [None] * num_steps
    for t in order:
      if reset is not None:
        state = reset_state(state, reset[t])
      state = self.cell.step_projected(projected[t], state)
      outputs[t] = state.hidden
    return tf.stack(outputs), state

  def _unroll_scan(self, projected, state, reset):
    if reset is None:
      reset = tf.zeros(tf.shape(projected)[:2], tf.bool)

    def step(carry, elems):
      x, r = elems
      carry = reset_state(LSTMState(*carry), r)
      new = self.cell.step_projected(x, carry)
      return tuple(new)

    states = tf.scan(step, (projected, reset), initializer=tuple(state),
                     reverse=self.reverse)
    final_index = 0 if self.reverse else -1
    final = LSTMState(states[0][final_index], states[1][final_index])
    return states[0], final

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(units=self.units, reverse=self.reverse,
                  forget_bias=self.forget_bias)
    return config


@_register
class MLP(params.ParamLayer):
  """A stack of `Linear` layers with ReLU between them.

  Args:
    output_sizes: sizes of the successive layers.
    activate_final: whether the last layer is followed by a ReLU too.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, output_sizes: Sequence[int], activate_final: bool = False,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.output_sizes = tuple(int(s) for s in output_sizes)
    if not self.output_sizes:
      raise ValueError('MLP output_sizes must not be empty.')
    self.activate_final = bool(activate_final)
    last = len(self.output_sizes) - 1
    self.linears = [
        Linear(size,
               activation='relu' if i < last or self.activate_final else None,
               dtype=self.dtype_policy, name=f'linear_{i}')
        for i, size in enumerate(self.output_sizes)
    ]

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    shape = tf.TensorShape(input_shape)
    _last_dim(shape, 'MLP')
    for linear in self.linears:
      params.build_sublayer(linear, shape)
      shape = linear.compute_output_shape(shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    outputs = inputs
    for linear in self.linears:
      outputs = linear(outputs)
    return outputs

  def compute_output_shape(
      self, input_shape: Union[tf.TensorShape, Sequence[Optional[int]]]
  ) -> tf.TensorShape:
    return tf.TensorShape(input_shape)[:-1].concatenate([self.output_sizes[-1]])

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(output_sizes=self.output_sizes,
                  activate_final=self.activate_final)
    return config
