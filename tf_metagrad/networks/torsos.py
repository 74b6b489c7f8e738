"""Shared torsos (STAC supplement 9.3, Table 2) and the recurrent core.

All torsos accept any number of leading batch dimensions (e.g. `[T, B, ...]`
learner batches or `[B, ...]` actor batches) and return `[..., output_size]`.
Pixel torsos take raw pixel values in [0, 255] (uint8, or any numeric dtype)
and scale them to [0, 1] themselves, so the observation never needs a float
copy outside the network.
"""

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import tensorflow as tf
from tensorflow.types.experimental import TensorLike

from tf_metagrad.networks import params
from tf_metagrad.networks import primitives

_register = tf.keras.utils.register_keras_serializable(package='tf_metagrad')


@_register
class MLPTorso(params.ParamLayer):
  """ReLU MLP over feature observations (STAC Table 2, control - features).

  Args:
    hidden_sizes: widths of the hidden layers; every layer, the last
      included, is followed by a ReLU.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, hidden_sizes: Sequence[int] = (256, 256),
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
    self.mlp = primitives.MLP(self.hidden_sizes, activate_final=True,
                              dtype=self.dtype_policy, name='mlp')

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    params.build_sublayer(self.mlp, input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    return self.mlp(tf.cast(inputs, self.compute_dtype))

  def compute_output_shape(
      self, input_shape: Union[tf.TensorShape, Sequence[Optional[int]]]
  ) -> tf.TensorShape:
    return self.mlp.compute_output_shape(input_shape)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(hidden_sizes=self.hidden_sizes)
    return config


class _ResidualTorso(params.ParamLayer):
  """Sections of conv (+ optional max-pool) and residual blocks, then dense.

  Per section s: a 3x3 convolution with `channels[s]` filters and stride
  `_CONV_STRIDE` (SAME padding), optionally a 3x3 max-pool with stride 2
  (SAME), then `blocks_per_section` residual blocks
  x + conv3x3(relu(conv3x3(relu(x)))) with stride 1. After the last section:
  ReLU, flatten, and a dense layer of `output_size` units with ReLU.
  Subclasses fix the stride and pooling of their domain.
  """

  _CONV_STRIDE = 1
  _MAX_POOL = True

  def __init__(self, channels: Sequence[int], blocks_per_section: int,
               output_size: int, **kwargs):
    super().__init__(**kwargs)
    self.channels = tuple(int(c) for c in channels)
    if not self.channels or min(self.channels) < 1:
      raise ValueError(f'channels must be a non-empty sequence of positive '
                       f'ints, got {channels!r}.')
    self.blocks_per_section = int(blocks_per_section)
    if self.blocks_per_section < 0:
      raise ValueError(
          f'blocks_per_section must be >= 0, got {blocks_per_section}.')
    self.output_size = int(output_size)
    policy = self.dtype_policy
    # Flat lists: Keras' `.keras` weight saving does not descend into
    # lists nested in lists.
    self.section_convs = []
    self.block_convs = []
    for s, filters in enumerate(self.channels):
      self.section_convs.append(primitives.Conv2D(
          filters, 3, strides=self._CONV_STRIDE, padding='SAME', dtype=policy,
          name=f'section_{s}_conv'))
      for b in range(self.blocks_per_section):
        for i in range(2):
          self.block_convs.append(primitives.Conv2D(
              filters, 3, padding='SAME', dtype=policy,
              name=f'section_{s}_block_{b}_conv_{i}'))
    self.linear = primitives.Linear(self.output_size, activation='relu',
                                    dtype=policy, name='linear')

  def _sections(self):
    """Yields (section conv, [(block conv a, block conv b), ...])."""
    n = self.blocks_per_section
    for s, conv in enumerate(self.section_convs):
      convs = self.block_convs[2 * n * s:2 * n * (s + 1)]
      yield conv, list(zip(convs[0::2], convs[1::2]))

  def _check_shape(self, shape: tf.TensorShape):
    if shape.rank is None or shape.rank < 4 or None in shape[-3:]:
      raise ValueError(
          f'{type(self).__name__} expects pixel inputs [..., H, W, C] with '
          f'known H, W, C, got shape {shape}.')

  def build(self, input_shape):
    shape = tf.TensorShape(input_shape)
    self._check_shape(shape)
    shape = tf.TensorShape([None]).concatenate(shape[-3:])
    for conv, blocks in self._sections():
      params.build_sublayer(conv, shape)
      shape = conv.compute_output_shape(shape)
      if self._MAX_POOL:
        shape = tf.TensorShape([None] + [
            primitives.conv_output_size(d, 3, 2, 'SAME') for d in shape[1:3]
        ] + [shape[3]])
      for conv_a, conv_b in blocks:
        params.build_sublayer(conv_a, shape)
        params.build_sublayer(conv_b, shape)
    params.build_sublayer(self.linear,
                          [None, shape[1] * shape[2] * shape[3]])
    super().build(input_shape)

  def call(self, inputs):
    inputs = tf.convert_to_tensor(inputs)
    self._check_shape(inputs.shape)
    leading = tf.shape(inputs)[:-3]
    x = tf.reshape(inputs, tf.concat([[-1], tf.shape(inputs)[-3:]], axis=0))
    x.set_shape([None] + inputs.shape[-3:].as_list())
    x = tf.cast(x, self.compute_dtype) / 255.0
    for conv, blocks in self._sections():
      x = conv(x)
      if self._MAX_POOL:
        x = tf.nn.max_pool2d(x, ksize=3, strides=2, padding='SAME')
      for conv_a, conv_b in blocks:
        x = x + conv_b(tf.nn.relu(conv_a(tf.nn.relu(x))))
    x = tf.nn.relu(x)
    x = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
    x = self.linear(x)
    return tf.reshape(x, tf.concat([leading, [self.output_size]], axis=0))

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-3].concatenate([self.output_size])

  def get_config(self):
    config = super().get_config()
    config.update(channels=self.channels,
                  blocks_per_section=self.blocks_per_section,
                  output_size=self.output_size)
    return config


@_register
class AtariResNetTorso(_ResidualTorso):
  """IMPALA deep ResNet torso for Atari (Espeholt et al. 2018; STAC Table 2).

  Input: stacked frames `[..., 84, 84, 4]` with pixel values in [0, 255].
  Each section: conv3x3 stride 1, max-pool 3x3 stride 2, then
  `blocks_per_section` residual blocks; then ReLU, flatten, dense + ReLU.

  STAC Table 2 lists channels (13, 32, 32); the IMPALA network it says it
  reuses has (16, 32, 32), which is the default here (13 reads as a typo).

  Args:
    channels: filters of each section.
    blocks_per_section: residual blocks per section (2 convs each).
    output_size: width of the final dense layer.
    **kwargs: Keras layer arguments.
  """

  _CONV_STRIDE = 1
  _MAX_POOL = True

  def __init__(self, channels: Sequence[int] = (16, 32, 32),
               blocks_per_section: int = 2, output_size: int = 256,
               **kwargs: Any) -> None:
    super().__init__(channels, blocks_per_section, output_size, **kwargs)


@_register
class ConvTorso(_ResidualTorso):
  """Residual conv torso for DM Control from pixels (STAC Table 2).

  Input: RGB frames `[..., H, W, 3]` with pixel values in [0, 255].
  Each section: conv3x3 with stride 2 (no pooling), then
  `blocks_per_section` residual blocks of two 3x3 stride-1 convolutions;
  then ReLU, flatten, dense + ReLU.

  Args:
    channels: filters of each section (Table 2: (32, 32, 32)).
    blocks_per_section: residual blocks per section (Table 2: 2).
    output_size: width of the final dense layer.
    **kwargs: Keras layer arguments.
  """

  _CONV_STRIDE = 2
  _MAX_POOL = False

  def __init__(self, channels: Sequence[int] = (32, 32, 32),
               blocks_per_section: int = 2, output_size: int = 256,
               **kwargs: Any) -> None:
    super().__init__(channels, blocks_per_section, output_size, **kwargs)


@_register
class RecurrentCore(params.ParamLayer):
  """LSTM core after the torso (STAC Table 2: 256 units for control).

  The learner unrolls it over a time-major batch with `unroll` (or by calling
  the layer); the actor advances it one step at a time with `step`. Both read
  the same weights, so a learner unroll from the actor's stored state
  reproduces the actor's outputs.

  Args:
    units: LSTM hidden size.
    **kwargs: Keras layer arguments.
  """

  def __init__(self, units: int = 256, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.units = int(units)
    self.lstm = primitives.StaticLSTM(self.units, dtype=self.dtype_policy,
                                      name='lstm')

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    shape = tf.TensorShape(input_shape)
    if shape.rank is None or shape.rank < 2:
      raise ValueError(
          f'RecurrentCore expects inputs [..., F], got shape {shape}.')
    params.build_sublayer(self.lstm, [None, None, shape[-1]])
    super().build(input_shape)

  def _ensure_built(self, inputs):
    if not self.built:
      self.build(inputs.shape)

  def initial_state(self,
                    batch_size: Union[int, tf.Tensor]) -> primitives.LSTMState:
    """All-zero `LSTMState` of `[batch_size, units]` tensors."""
    return self.lstm.initial_state(batch_size)

  def unroll(self, inputs: TensorLike,
             state: Optional[primitives.LSTMState] = None,
             reset: Optional[TensorLike] = None
             ) -> Tuple[tf.Tensor, primitives.LSTMState]:
    """Learner-side unroll.

    Args:
      inputs: `[T, B, F]` torso outputs.
      state: `LSTMState` at t = 0 (zeros if None), e.g. the actor's stored
        `core_state`.
      reset: optional bool `[T, B]`; the state is zeroed before step t where
        `reset[t]` is True (the first step of a new episode).

    Returns:
      (outputs `[T, B, units]`, state after step T-1).
    """
    inputs = tf.convert_to_tensor(inputs)
    self._ensure_built(inputs)
    return self.lstm(inputs, initial_state=state, reset=reset)

  def step(self, inputs: TensorLike, state: primitives.LSTMState,
           reset: Optional[TensorLike] = None
           ) -> Tuple[tf.Tensor, primitives.LSTMState]:
    """Actor-side single step.

    Args:
      inputs: `[B, F]` torso outputs.
      state: `LSTMState` of `[B, units]` tensors.
      reset: optional bool `[B]`; zeroes the state of those rows first.

    Returns:
      (output `[B, units]`, new state).
    """
    inputs = tf.convert_to_tensor(inputs)
    self._ensure_built(inputs)
    cell = self.lstm.cell
    inputs = tf.cast(inputs, self.compute_dtype)
    state = primitives.LSTMState(
        *[tf.cast(s, self.compute_dtype) for s in state])
    if reset is not None:
      state = primitives.reset_state(state, tf.cast(reset, tf.bool))
    new_state = cell.step_projected(cell.input_projection(inputs), state)
    return new_state.hidden, new_state

  def call(self, inputs: tf.Tensor,
           state: Optional[primitives.LSTMState] = None,
           reset: Optional[tf.Tensor] = None
           ) -> Tuple[tf.Tensor, primitives.LSTMState]:
    """Same as `unroll`."""
    return self.unroll(inputs, state, reset)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(units=self.units)
    return config
