"""Meta-parameters eta: STAC-style logits and the FRODO target network."""

from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from tf_metagrad.networks import params
from tf_metagrad.networks import primitives

_register = tf.keras.utils.register_keras_serializable(package='tf_metagrad')

Number = Union[float, Sequence[float]]


class MetaParamSpec(NamedTuple):
  """How one named metaparameter is parameterised.

  Attributes:
    shape: shape of the logit (() for a scalar, e.g. (N,) for DrMG's
      per-quantile discounts).
    init_logit: initial logit, a float or an array broadcastable to `shape`.
      STAC Table 3: 4.6, so that sigmoid(4.6) = 0.99.
    outer_value: None for a metaparameter that is sigmoid(logit) itself (gamma,
      lambda, alpha); a float or array for a loss weight
      sigmoid(logit) * outer_value (STAC Algorithm 2 line 10: g_v, g_p, g_e).
  """

  shape: Sequence[int] = ()
  init_logit: Number = 4.6
  outer_value: Optional[Number] = None


def _to_json_number(value):
  array = np.asarray(value, dtype=np.float64)
  return float(array) if array.ndim == 0 else array.tolist()


def _as_spec(name: str, spec) -> MetaParamSpec:
  if isinstance(spec, Mapping):
    spec = MetaParamSpec(**spec)
  if not isinstance(spec, MetaParamSpec):
    raise TypeError(f'specs[{name!r}] must be a MetaParamSpec or a dict of its '
                    f'fields, got {type(spec).__name__}.')
  shape = tuple(int(d) for d in spec.shape)
  for field in ('init_logit', 'outer_value'):
    value = getattr(spec, field)
    if value is None:
      continue
    value_shape = np.shape(value)
    try:
      np.broadcast_to(np.asarray(value, np.float64), shape)
    except ValueError:
      raise ValueError(
          f'specs[{name!r}].{field} with shape {list(value_shape)} does not '
          f'broadcast to the logit shape {list(shape)}.') from None
  return MetaParamSpec(
      shape=shape, init_logit=_to_json_number(spec.init_logit),
      outer_value=(None if spec.outer_value is None
                   else _to_json_number(spec.outer_value)))


@_register
class MetaParameters(params.ParamLayer):
  """Named metaparameter logits held as trainable variables.

  STAC (Zahavy et al. 2020) section 3.1 and Algorithm 2 line 10: every
  metaparameter is a logit passed through a sigmoid, and loss weights are
  additionally scaled by their outer-loss value, e.g. gamma = sigmoid(gamma)
  and g_v = sigmoid(g_v) * g_v^outer. The variables are created in name-sorted
  order, which is the order of `trainable_variables` (the order to use with
  `call_with_weights`).

  Args:
    specs: dict name -> `MetaParamSpec` (or a dict of its fields).
    **kwargs: Keras layer arguments (dtype sets the variables' dtype).
  """

  def __init__(self, specs: Mapping[str, MetaParamSpec],
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if not specs:
      raise ValueError('MetaParameters needs at least one spec.')
    self._specs = {name: _as_spec(name, specs[name]) for name in sorted(specs)}
    self._variables = {}
    for name, spec in self._specs.items():
      init = np.broadcast_to(np.asarray(spec.init_logit), spec.shape)
      self._variables[name] = self.add_weight(
          name=name, shape=spec.shape,
          initializer=tf.keras.initializers.Constant(init.copy()),
          trainable=True)
    self.built = True

  @property
  def specs(self) -> Dict[str, MetaParamSpec]:
    return dict(self._specs)

  def logits(self) -> Dict[str, tf.Tensor]:
    """The current logits (each variable, or its active substitute)."""
    return {name: self.param(v) for name, v in self._variables.items()}

  def transform(self, logits: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Maps logits to metaparameter values; a pure function of `logits`.

    Args:
      logits: dict from some (or all) of the spec names to logit tensors,
        e.g. perturbed or substituted ones.

    Returns:
      dict with the same keys: sigmoid(logit), times `outer_value` when the
      spec has one (STAC Algorithm 2 line 10).

    Raises:
      ValueError: on a name that has no spec.
    """
    unknown = sorted(set(logits) - set(self._specs))
    if unknown:
      raise ValueError(f'transform got logits for unknown metaparameters '
                       f'{unknown}; known: {sorted(self._specs)}.')
    values = {}
    for name, logit in logits.items():
      logit = tf.convert_to_tensor(logit, dtype_hint=self.compute_dtype)
      value = tf.sigmoid(logit)
      outer = self._specs[name].outer_value
      if outer is not None:
        value = value * tf.constant(outer, dtype=value.dtype)
      values[name] = value
    return values

  def values(self) -> Dict[str, tf.Tensor]:
    """`transform(logits())`: the metaparameters the inner loss uses."""
    return self.transform(self.logits())

  def call(self, inputs: Any = None) -> Dict[str, tf.Tensor]:
    """Returns `values()`; `inputs` is ignored (Keras needs an argument)."""
    del inputs
    return self.values()

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(specs={name: spec._asdict()
                         for name, spec in self._specs.items()})
    return config


@_register
class FrodoTargetNetwork(params.ParamLayer):
  """The FRODO meta-network G_eta(tau) (Xu et al. 2020; Qiu (2021) section 4.1).

  An LSTM runs over per-step inputs [r_t, discount_t, v(x_{t+1})]
  (optionally concatenated with an observation embedding), and a linear
  layer maps each LSTM output to the target G_eta(tau)_t. Qiu (2021): 32 LSTM
  units and a 32 -> 1 linear layer, the LSTM without bias (`use_bias=False`;
  the default keeps the library's biased LSTM). By default the LSTM runs
  forward in time, as the unidirectional LSTM of Qiu's (2021) code (section
  5.2) reads its inputs in step order; `reverse=True` runs it backwards, so that the
  output at t summarises steps t .. T-1 as a return does.
  The LSTM state is not reset where discount_t = 0: the discount is an
  input, so the network can learn to cut its summary at episode ends.

  Args:
    units: LSTM size.
    output_size: 1 for a scalar target `[T, B]`; N > 1 for a distributional
      target `[T, B, N]`.
    use_observation_embedding: whether `call` takes an `[T, B, E]` embedding.
    embedding_size: E, needed to build the weights before the first call
      (otherwise they are created on the first call, which sees E).
    reverse: run the LSTM from t = T-1 down to 0 instead of forward.
    use_bias: False drops the LSTM's gate bias and its constant forget bias,
      as Qiu (2021) section 5.2's `nn.LSTM(..., bias=False)` (the linear
      output layer keeps its bias there and here).
    **kwargs: Keras layer arguments.
  """

  def __init__(self, units: int = 32, output_size: int = 1,
               use_observation_embedding: bool = False,
               embedding_size: Optional[int] = None,
               reverse: bool = False,
               use_bias: bool = True,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.units = int(units)
    self.output_size = int(output_size)
    if self.units < 1 or self.output_size < 1:
      raise ValueError(f'units and output_size must be >= 1, got units='
                       f'{units}, output_size={output_size}.')
    self.use_observation_embedding = bool(use_observation_embedding)
    self.embedding_size = (None if embedding_size is None
                           else int(embedding_size))
    if self.embedding_size is not None and not self.use_observation_embedding:
      raise ValueError('embedding_size is only meaningful with '
                       'use_observation_embedding=True.')
    self.reverse = bool(reverse)
    self.use_bias = bool(use_bias)
    self.lstm = primitives.StaticLSTM(
        self.units, reverse=self.reverse,
        forget_bias=1.0 if self.use_bias else 0.0,
        dtype=self.dtype_policy, name='lstm')
    self.linear = primitives.Linear(self.output_size, dtype=self.dtype_policy,
                                    name='linear')

  def _build_lstm(self, input_shape):
    params.build_sublayer(self.lstm, input_shape)
    if self.use_bias:
      return
    # The cell always creates its bias (zeros); out of the trainable list it
    # stays zero, is no part of eta, and gets no meta-gradient.
    cell = self.lstm.cell
    trainable = cell._trainable_weights  # pylint: disable=protected-access
    index = next(i for i, w in enumerate(trainable) if w is cell.bias)
    del trainable[index]
    cell._non_trainable_weights.append(cell.bias)  # pylint: disable=protected-access

  def _feature_size(self, embedding_size):
    return 3 + (embedding_size if self.use_observation_embedding else 0)

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    """Builds from the rewards shape `[T, B]`.

    With an observation embedding and no `embedding_size`, the LSTM weights
    are created by the first call instead.
    """
    if not self.use_observation_embedding or self.embedding_size is not None:
      features = self._feature_size(self.embedding_size)
      self._build_lstm([None, None, features])
    params.build_sublayer(self.linear, [None, None, self.units])
    super().build(input_shape)

  def call(self, rewards: tf.Tensor, discounts: tf.Tensor,
           next_values: tf.Tensor,
           observation_embedding: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Computes G_eta(tau).

    Args:
      rewards: `[T, B]` r_t.
      discounts: `[T, B]` environment discount of step t+1.
      next_values: `[T, B]` v(x_{t+1}) of the agent.
      observation_embedding: `[T, B, E]`, required iff
        `use_observation_embedding`.

    Returns:
      `[T, B]` targets (or `[T, B, output_size]` when output_size > 1).
    """
    dtype = self.compute_dtype
    columns = {'rewards': rewards, 'discounts': discounts,
               'next_values': next_values}
    tensors = []
    for name, value in columns.items():
      value = tf.cast(value, dtype)
      if value.shape.rank != 2:
        raise ValueError(f'FrodoTargetNetwork `{name}` must be [T, B], got '
                         f'shape {value.shape}.')
      tensors.append(value)
    features = tf.stack(tensors, axis=-1)
    if self.use_observation_embedding:
      if observation_embedding is None:
        raise ValueError('FrodoTargetNetwork was built with '
                         'use_observation_embedding=True but no '
                         '`observation_embedding` was given.')
      embedding = tf.cast(observation_embedding, dtype)
      if embedding.shape.rank != 3:
        raise ValueError(f'`observation_embedding` must be [T, B, E], got '
                         f'shape {embedding.shape}.')
      if (self.embedding_size is not None
          and embedding.shape[-1] != self.embedding_size):
        raise ValueError(f'`observation_embedding` must have E = '
                         f'{self.embedding_size}, got shape {embedding.shape}.')
      features = tf.concat([features, embedding], axis=-1)
    elif observation_embedding is not None:
      raise ValueError('`observation_embedding` was given but the network was '
                       'built with use_observation_embedding=False.')
    if not self.lstm.built:
      self._build_lstm(features.shape)
    outputs, _ = self.lstm(features)
    targets = self.linear(outputs)
    if self.output_size == 1:
      targets = tf.squeeze(targets, -1)
    return targets

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(units=self.units, output_size=self.output_size,
                  use_observation_embedding=self.use_observation_embedding,
                  embedding_size=self.embedding_size, reverse=self.reverse,
                  use_bias=self.use_bias)
    return config
