"""Policy and value heads on top of a torso (STAC supplement 9.3; DrMG).

STAC: "Each head is a two-layered MLP with 256 hidden units"; the policy and
the value function have separate MLPs, with ReLU after every layer but the
last. Every head maps `[..., F]` to outputs with the same leading shape.
"""

from typing import Any, Dict, Sequence, Tuple

import tensorflow as tf

from tf_metagrad.networks import params
from tf_metagrad.networks import primitives

_register = tf.keras.utils.register_keras_serializable(package='tf_metagrad')


def _positive(value, name: str) -> int:
  if int(value) < 1:
    raise ValueError(f'{name} must be >= 1, got {value}.')
  return int(value)


class _MLPHeads(params.ParamLayer):
  """Base of heads made of sub-networks (named in `_PARTS`) on one input."""

  _PARTS = ()

  def __init__(self, hidden_sizes: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.hidden_sizes = tuple(int(h) for h in hidden_sizes)

  def _mlp(self, output_size: int, name: str) -> primitives.MLP:
    return primitives.MLP(self.hidden_sizes + (output_size,),
                          dtype=self.dtype_policy, name=name)

  def build(self, input_shape):
    for name in self._PARTS:
      params.build_sublayer(getattr(self, name), input_shape)
    super().build(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update(hidden_sizes=self.hidden_sizes)
    return config


@_register
class PolicyValueHead(_MLPHeads):
  """Softmax policy logits and a scalar value from separate MLPs.

  Args:
    num_actions: number of discrete actions A.
    hidden_sizes: hidden widths of each MLP (STAC: (256, 256)).
    **kwargs: Keras layer arguments.

  Call returns:
    (logits `[..., A]`, value `[...]`).
  """

  _PARTS = ('policy', 'value')

  def __init__(self, num_actions: int,
               hidden_sizes: Sequence[int] = (256, 256),
               **kwargs: Any) -> None:
    super().__init__(hidden_sizes, **kwargs)
    self.num_actions = _positive(num_actions, 'num_actions')
    self.policy = self._mlp(self.num_actions, 'policy')
    self.value = self._mlp(1, 'value')

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    return self.policy(inputs), tf.squeeze(self.value(inputs), -1)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(num_actions=self.num_actions)
    return config


@_register
class SquashedGaussianPolicyHead(_MLPHeads):
  """Mean and std of the pre-tanh Gaussian of a squashed Gaussian policy.

  One MLP outputs 2 * action_dim numbers (m, y) per input (STAC supplement
  9.3). The mean is tanh(m) and the standard deviation is

      std = exp(sigma_min + 0.5 * (sigma_max - sigma_min) * (tanh(y) + 1)),

  so log std lies in (sigma_min, sigma_max). Actions are samples of
  N(mean, std) squashed by tanh (Haarnoja et al. 2018); the squashing and its
  log-det-Jacobian correction belong to the distribution code, not here.

  The defaults sigma_min = -4, sigma_max = 1 (std in (0.018, 2.7)) are our
  choice; the paper gives the formula but not the bounds. The lower bound
  keeps log-densities and the KL to the standard Gaussian bounded; a wider
  pre-squash Gaussian than std ~ e would mostly saturate tanh and pile its
  mass at the action bounds, so larger values buy no extra exploration.

  Args:
    action_dim: action dimensionality.
    hidden_sizes: hidden widths of the MLP.
    sigma_min: lower bound of log std.
    sigma_max: upper bound of log std.
    **kwargs: Keras layer arguments.

  Call returns:
    (mean `[..., action_dim]`, std `[..., action_dim]`).
  """

  _PARTS = ('policy',)

  def __init__(self, action_dim: int,
               hidden_sizes: Sequence[int] = (256, 256),
               sigma_min: float = -4.0, sigma_max: float = 1.0,
               **kwargs: Any) -> None:
    super().__init__(hidden_sizes, **kwargs)
    self.action_dim = _positive(action_dim, 'action_dim')
    if not float(sigma_min) < float(sigma_max):
      raise ValueError(f'sigma_min must be < sigma_max, got sigma_min='
                       f'{sigma_min}, sigma_max={sigma_max}.')
    self.sigma_min = float(sigma_min)
    self.sigma_max = float(sigma_max)
    self.policy = self._mlp(2 * self.action_dim, 'policy')

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    # One tanh before the split, not one on each half: with a tanh on both
    # outputs of a Split, TF 2.15's grappler (arithmetic optimizer, unary-chain
    # hoisting) miscompiles STACX's stacked heads once log(std) is taken
    # downstream, and the traced mean differs from the eager one by ~0.2.
    mean, squashed_std = tf.split(tf.tanh(self.policy(inputs)), 2, axis=-1)
    log_std = self.sigma_min + 0.5 * (self.sigma_max - self.sigma_min) * (
        squashed_std + 1.0)
    return mean, tf.exp(log_std)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(action_dim=self.action_dim, sigma_min=self.sigma_min,
                  sigma_max=self.sigma_max)
    return config


@_register
class GaussianPolicyValueHead(_MLPHeads):
  """`SquashedGaussianPolicyHead` plus a separate value MLP.

  Args:
    action_dim: action dimensionality.
    hidden_sizes: hidden widths of both MLPs.
    sigma_min: see `SquashedGaussianPolicyHead`.
    sigma_max: see `SquashedGaussianPolicyHead`.
    **kwargs: Keras layer arguments.

  Call returns:
    (mean `[..., action_dim]`, std `[..., action_dim]`, value `[...]`).
  """

  _PARTS = ('policy', 'value')

  def __init__(self, action_dim: int,
               hidden_sizes: Sequence[int] = (256, 256),
               sigma_min: float = -4.0, sigma_max: float = 1.0,
               **kwargs: Any) -> None:
    super().__init__(hidden_sizes, **kwargs)
    self.policy = SquashedGaussianPolicyHead(
        action_dim, self.hidden_sizes, sigma_min, sigma_max,
        dtype=self.dtype_policy, name='policy')
    self.value = self._mlp(1, 'value')

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    mean, std = self.policy(inputs)
    return mean, std, tf.squeeze(self.value(inputs), -1)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(action_dim=self.policy.action_dim,
                  sigma_min=self.policy.sigma_min,
                  sigma_max=self.policy.sigma_max)
    return config


@_register
class QuantileValueHead(_MLPHeads):
  """N quantiles of the return distribution (DrMG, Yin et al. (2023) section 3).

  The output layer has N units instead of 1, which is the only difference to
  a scalar value head ("|N - 1| * 256 more parameters"). Quantiles are not
  sorted: quantile regression orders them through the loss.

  Args:
    num_quantiles: N.
    hidden_sizes: hidden widths of the MLP.
    **kwargs: Keras layer arguments.

  Call returns:
    quantiles `[..., N]`.
  """

  _PARTS = ('value',)

  def __init__(self, num_quantiles: int,
               hidden_sizes: Sequence[int] = (256, 256),
               **kwargs: Any) -> None:
    super().__init__(hidden_sizes, **kwargs)
    self.num_quantiles = _positive(num_quantiles, 'num_quantiles')
    self.value = self._mlp(self.num_quantiles, 'value')

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    return self.value(inputs)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(num_quantiles=self.num_quantiles)
    return config


@_register
class PolicyQuantileHead(_MLPHeads):
  """Policy logits and value quantiles from separate MLPs (DrMG's head).

  Args:
    num_actions: number of discrete actions A.
    num_quantiles: N.
    hidden_sizes: hidden widths of both MLPs.
    **kwargs: Keras layer arguments.

  Call returns:
    (logits `[..., A]`, quantiles `[..., N]`).
  """

  _PARTS = ('policy', 'value')

  def __init__(self, num_actions: int, num_quantiles: int,
               hidden_sizes: Sequence[int] = (256, 256),
               **kwargs: Any) -> None:
    super().__init__(hidden_sizes, **kwargs)
    self.num_actions = _positive(num_actions, 'num_actions')
    self.num_quantiles = _positive(num_quantiles, 'num_quantiles')
    self.policy = self._mlp(self.num_actions, 'policy')
    self.value = self._mlp(self.num_quantiles, 'value')

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    return self.policy(inputs), self.value(inputs)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(num_actions=self.num_actions,
                  num_quantiles=self.num_quantiles)
    return config
