"""Differentiable inner-loop optimizers: SGD, RMSProp and Adam as pure maths.

Meta-gradients (Xu et al. 2018; STAC, Zahavy et al. 2020, Algorithm 2)
differentiate the outer loss through the inner update
theta' = theta + Delta(grad_theta L_in(theta, eta), state), so the update must
be ordinary tensor arithmetic, differentiable with respect to the gradients it
is given and to the optimizer state. Here an optimizer is a stateless object
with

    state = opt.init(params)
    new_params, new_state = opt.update(grads, state, params, learning_rate)

where `state` is a list aligned with `params` (one NamedTuple of tensors per
parameter) and everything returned is a tensor. The learners keep the state
in variables themselves and assign the very tensors the meta-gradient engine
produced (`agents.base`).

A None gradient (a parameter the loss does not use) leaves that parameter and
its state unchanged.
"""

import abc
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf


class SGDState(NamedTuple):
  """Per-parameter SGD state: the momentum trace, or () without momentum."""

  trace: Any = ()


class RMSPropState(NamedTuple):
  """Per-parameter RMSProp state.

  Attributes:
    mean_square: running mean of g^2.
    trace: momentum trace, or () when momentum is 0.
  """

  mean_square: tf.Tensor
  trace: Any = ()


class AdamState(NamedTuple):
  """Per-parameter Adam state.

  Attributes:
    count: int32 scalar, number of updates taken (for bias correction).
    mu: first-moment estimate.
    nu: second-moment estimate.
  """

  count: tf.Tensor
  mu: tf.Tensor
  nu: tf.Tensor


def _as_list(values, name: str) -> list:
  if isinstance(values, (tf.Tensor, tf.Variable)) or not isinstance(
      values, (list, tuple)):
    raise TypeError(f'`{name}` must be a list of tensors, got '
                    f'{type(values).__name__}.')
  return list(values)


def _cast(value, dtype):
  """Casts tensors; converts Python numbers directly (no float32 rounding)."""
  if tf.is_tensor(value) or isinstance(value, tf.Variable):
    return tf.cast(value, dtype)
  return tf.convert_to_tensor(value, dtype=dtype)


def _dense(grad):
  if isinstance(grad, tf.IndexedSlices):
    return tf.convert_to_tensor(grad)
  return grad


class _Optimizer(abc.ABC):
  """Shared validation and per-parameter dispatch of the pure optimizers."""

  @abc.abstractmethod
  def _init_one(self, param) -> Any:
    """Initial state of one parameter."""

  @abc.abstractmethod
  def _update_one(self, grad, state, param, learning_rate,
                  stop_statistics_gradient: bool) -> Tuple[tf.Tensor, Any]:
    """(new param, new state) of one parameter."""

  def init(self, params: Sequence[Any]) -> List[Any]:
    """Initial state, a list aligned with `params`.

    Args:
      params: tensors or variables.

    Returns:
      One state NamedTuple of zero tensors per parameter.
    """
    return [self._init_one(tf.convert_to_tensor(p))
            for p in _as_list(params, 'params')]

  def update(self, grads: Sequence[Optional[tf.Tensor]], state: Sequence[Any],
             params: Sequence[Any], learning_rate,
             stop_statistics_gradient: bool = False
             ) -> Tuple[List[tf.Tensor], List[Any]]:
    """One differentiable update step.

    Args:
      grads: gradients aligned with `params` (None: leave that one alone).
      state: the state from `init` or a previous `update`.
      params: current parameters (tensors or variables).
      learning_rate: scalar (tensor or float), e.g. from `linear_schedule`.
      stop_statistics_gradient: if True, the statistics that only normalise
        the step (RMSProp's mean square, Adam's second moment) are computed
        from stop-gradiented inputs, so derivatives of the new parameters flow
        only through the gradient in the numerator (and its momentum). Values
        are unchanged. SGD has no such statistics.

    Returns:
      (new_params, new_state), lists of tensors / state tuples aligned with
      `params`.

    Raises:
      ValueError: if the lists have different lengths or a gradient's shape
        does not match its parameter's.
    """
    grads = _as_list(grads, 'grads')
    state = _as_list(state, 'state')
    params = _as_list(params, 'params')
    if not len(grads) == len(state) == len(params):
      raise ValueError(
          f'update needs grads, state and params of equal length, got '
          f'{len(grads)} grads, {len(state)} states and {len(params)} params.')
    new_params, new_state = [], []
    for i, (g, s, p) in enumerate(zip(grads, state, params)):
      p = tf.convert_to_tensor(p)
      if g is None:
        new_params.append(p)
        new_state.append(s)
        continue
      g = tf.convert_to_tensor(_dense(g))
      if not g.shape.is_compatible_with(p.shape):
        raise ValueError(f'grads[{i}] has shape {g.shape} but params[{i}] has '
                         f'shape {p.shape}.')
      lr = _cast(learning_rate, p.dtype)
      p_new, s_new = self._update_one(g, s, p, lr,
                                      bool(stop_statistics_gradient))
      new_params.append(p_new)
      new_state.append(s_new)
    return new_params, new_state


def _check_unit_interval(value: float, name: str, closed_right: bool = False):
  ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
  if not ok:
    bound = '[0, 1]' if closed_right else '[0, 1)'
    raise ValueError(f'{name} must be in {bound}, got {value}.')


class SGD(_Optimizer):
  """Stochastic gradient descent with optional heavy-ball momentum.

      trace' = momentum * trace + g
      theta' = theta - lr * trace'          (trace' = g without momentum)

  Args:
    momentum: momentum coefficient in [0, 1).
  """

  def __init__(self, momentum: float = 0.0) -> None:
    _check_unit_interval(float(momentum), 'momentum')
    self.momentum = float(momentum)

  def _init_one(self, param):
    if self.momentum == 0.0:
      return SGDState()
    return SGDState(trace=tf.zeros_like(param))

  def _update_one(self, grad, state, param, learning_rate,
                  stop_statistics_gradient):
    del stop_statistics_gradient
    if self.momentum == 0.0:
      return param - learning_rate * grad, SGDState()
    trace = self.momentum * state.trace + grad
    return param - learning_rate * trace, SGDState(trace=trace)


class RMSProp(_Optimizer):
  """RMSProp (Tieleman & Hinton 2012) as used by STAC (Table 3).

      ms'    = decay * ms + (1 - decay) * g^2
      step   = g / sqrt(ms' + epsilon)
      trace' = momentum * trace + step      (trace' = step without momentum)
      theta' = theta - lr * trace'

  Where epsilon sits matters a lot with STAC's large epsilon = 0.1. Here it
  is INSIDE the square root and the mean square starts at 0, as in optax's
  `rmsprop` (the JAX stack the STAC authors used). TF1's
  `tf.compat.v1.train.RMSPropOptimizer` also adds epsilon inside the root but
  starts the mean square at 1, and Keras 2's `RMSprop` adds epsilon outside
  the root (g / (sqrt(ms') + epsilon)); with epsilon = 0.1 those give
  noticeably different steps. The learning rate multiplies the momentum
  trace rather than being accumulated into it (optax order), so a changing
  learning rate takes effect immediately.

  Args:
    decay: decay of the mean square, in [0, 1).
    epsilon: added to the mean square inside the square root, >= 0.
    momentum: momentum coefficient in [0, 1).
  """

  def __init__(self, decay: float = 0.99, epsilon: float = 0.1,
               momentum: float = 0.0) -> None:
    _check_unit_interval(float(decay), 'decay')
    _check_unit_interval(float(momentum), 'momentum')
    if float(epsilon) < 0.0:
      raise ValueError(f'epsilon must be >= 0, got {epsilon}.')
    self.decay = float(decay)
    self.epsilon = float(epsilon)
    self.momentum = float(momentum)

  def _init_one(self, param):
    trace = () if self.momentum == 0.0 else tf.zeros_like(param)
    return RMSPropState(mean_square=tf.zeros_like(param), trace=trace)

  def _update_one(self, grad, state, param, learning_rate,
                  stop_statistics_gradient):
    mean_square, stat_grad = state.mean_square, grad
    if stop_statistics_gradient:
      mean_square = tf.stop_gradient(mean_square)
      stat_grad = tf.stop_gradient(grad)
    mean_square = (self.decay * mean_square
                   + (1.0 - self.decay) * tf.square(stat_grad))
    step = grad * tf.math.rsqrt(mean_square + self.epsilon)
    if self.momentum == 0.0:
      return param - learning_rate * step, RMSPropState(mean_square)
    trace = self.momentum * state.trace + step
    return param - learning_rate * trace, RMSPropState(mean_square, trace)


class Adam(_Optimizer):
  """Adam (Kingma & Ba 2015, Algorithm 1) with bias correction.

      mu' = b1 * mu + (1 - b1) * g
      nu' = b2 * nu + (1 - b2) * g^2
      theta' = theta - lr * mu_hat / (sqrt(nu_hat + eps_root) + epsilon),
      mu_hat = mu' / (1 - b1^k), nu_hat = nu' / (1 - b2^k), k = update count.

  epsilon is outside the square root as in the paper. STAC's meta-optimizer
  (Table 3) is Adam with lr 1e-3, b1 0.9, b2 0.999, epsilon 1e-4.
  `eps_root` > 0 (optax's name) bounds the derivative of the step with
  respect to nu', which grows like nu'^(-1/2) for parameters whose gradients
  have been tiny; it can help when differentiating through Adam and is 0 (the
  paper's rule) by default.

  Args:
    b1: first-moment decay in [0, 1).
    b2: second-moment decay in [0, 1).
    epsilon: added to sqrt(nu_hat), >= 0.
    eps_root: added to nu_hat inside the square root, >= 0.
  """

  def __init__(self, b1: float = 0.9, b2: float = 0.999,
               epsilon: float = 1e-8, eps_root: float = 0.0) -> None:
    _check_unit_interval(float(b1), 'b1')
    _check_unit_interval(float(b2), 'b2')
    if float(epsilon) < 0.0 or float(eps_root) < 0.0:
      raise ValueError(f'epsilon and eps_root must be >= 0, got epsilon='
                       f'{epsilon}, eps_root={eps_root}.')
    self.b1 = float(b1)
    self.b2 = float(b2)
    self.epsilon = float(epsilon)
    self.eps_root = float(eps_root)

  def _init_one(self, param):
    return AdamState(count=tf.zeros([], tf.int32), mu=tf.zeros_like(param),
                     nu=tf.zeros_like(param))

  def _update_one(self, grad, state, param, learning_rate,
                  stop_statistics_gradient):
    nu, stat_grad = state.nu, grad
    if stop_statistics_gradient:
      nu = tf.stop_gradient(nu)
      stat_grad = tf.stop_gradient(grad)
    count = state.count + 1
    k = tf.cast(count, param.dtype)
    mu = self.b1 * state.mu + (1.0 - self.b1) * grad
    nu = self.b2 * nu + (1.0 - self.b2) * tf.square(stat_grad)
    mu_hat = mu / (1.0 - tf.pow(tf.constant(self.b1, param.dtype), k))
    nu_hat = nu / (1.0 - tf.pow(tf.constant(self.b2, param.dtype), k))
    step = mu_hat / (tf.sqrt(nu_hat + self.eps_root) + self.epsilon)
    return param - learning_rate * step, AdamState(count, mu, nu)
