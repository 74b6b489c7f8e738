"""Policy log-probabilities, entropies, KLs and the policy-gradient loss.

Two policy families are covered:
  * categorical policies over A discrete actions, given logits `[..., A]`;
  * tanh-squashed diagonal Gaussians for continuous control, given the
    pre-squash mean and standard deviation `[..., A]`, with actions in
    (-1, 1). The change of variables a = tanh(u) follows SAC (Haarnoja et al.
    2018) appendix C; STAC (Zahavy et al. 2020) section 4.2 and supplement 9.3
    regularise such policies with a KL to N(0, I).

There is deliberately no entropy for the tanh-squashed Gaussian: it has no
closed form, and STAC section 4.2 replaces the entropy bonus for control by
the KL of the pre-squash Gaussian to N(0, I) (`gaussian_kl_to_standard_normal`).

Nothing here stops gradients; callers decide which inputs are fixed.
"""

import math
from typing import Optional, Tuple

import tensorflow as tf
from tensorflow.types.experimental import TensorLike
from tf_metagrad.ops import _checks

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _same_shape(tensor, name, reference, reference_name):
  _checks.require_known_rank(tensor, name)
  if not tensor.shape.is_compatible_with(reference.shape):
    raise ValueError(f'`{name}` must have the shape of `{reference_name}` '
                     f'{_checks.shape_str(reference.shape)}, got '
                     f'{_checks.shape_str(tensor.shape)}.')


def _logits(logits, name='logits', dtype=None):
  logits = _checks.float_tensor(logits, name, dtype)
  _checks.require_known_rank(logits, name)
  if logits.shape.rank < 1:
    raise ValueError(f'`{name}` must have shape [..., A], got a scalar.')
  return logits


def categorical_log_prob(logits: TensorLike, actions: TensorLike) -> tf.Tensor:
  """log pi(a | x) of a categorical policy.

  Written with log_softmax and a gather rather than
  `sparse_softmax_cross_entropy_with_logits`, whose gradient cannot be
  differentiated again.

  Args:
    logits: `[..., A]` unnormalised log-probabilities.
    actions: `[...]` integer actions in [0, A).

  Returns:
    `[...]` log-probabilities, dtype of `logits`.

  Raises:
    ValueError: if `actions` does not have the leading shape of `logits`.
    TypeError: if `actions` is not an integer tensor.
  """
  logits = _logits(logits)
  actions = tf.convert_to_tensor(actions)
  if not actions.dtype.is_integer:
    raise TypeError(f'`actions` must be an integer tensor, got dtype '
                    f'{actions.dtype.name}.')
  _checks.require_known_rank(actions, 'actions')
  if not actions.shape.is_compatible_with(logits.shape[:-1]):
    raise ValueError(
        f'`actions` must have shape {_checks.shape_str(logits.shape[:-1])} '
        '(the shape of `logits` without the action axis), got '
        f'{_checks.shape_str(actions.shape)}.')
  log_probs = tf.nn.log_softmax(logits)
  return tf.gather(log_probs, actions[..., tf.newaxis],
                   batch_dims=actions.shape.rank)[..., 0]


def categorical_entropy(logits: TensorLike) -> tf.Tensor:
  """Entropy -sum_a pi(a) log pi(a) of a categorical policy.

  Args:
    logits: `[..., A]` finite unnormalised log-probabilities.

  Returns:
    `[...]` entropies.
  """
  logits = _logits(logits)
  log_probs = tf.nn.log_softmax(logits)
  return -tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=-1)


def categorical_kl(p_logits: TensorLike, q_logits: TensorLike) -> tf.Tensor:
  """KL(p || q) = sum_a p(a) (log p(a) - log q(a)) of categorical policies.

  Args:
    p_logits: `[..., A]` logits of p.
    q_logits: `[..., A]` logits of q, same shape.

  Returns:
    `[...]` KL divergences.

  Raises:
    ValueError: if the shapes differ.
  """
  p_logits = _logits(p_logits, 'p_logits')
  q_logits = _logits(q_logits, 'q_logits', p_logits.dtype)
  _same_shape(q_logits, 'q_logits', p_logits, 'p_logits')
  p_log_probs = tf.nn.log_softmax(p_logits)
  q_log_probs = tf.nn.log_softmax(q_logits)
  return tf.reduce_sum(tf.exp(p_log_probs) * (p_log_probs - q_log_probs),
                       axis=-1)


def policy_gradient_loss(log_probs: TensorLike,
                         advantages: TensorLike) -> tf.Tensor:
  """Elementwise score-function loss -log pi(a|x) * advantage.

  The advantages are not stopped here: callers usually wrap them in
  `tf.stop_gradient`, but meta-gradient objectives may want them live.

  Args:
    log_probs: `[...]` log pi(a_t | x_t).
    advantages: same shape.

  Returns:
    `[...]` per-sample losses (reduce them as needed).

  Raises:
    ValueError: if the shapes differ.
  """
  log_probs = _checks.float_tensor(log_probs, 'log_probs')
  advantages = _checks.float_tensor(advantages, 'advantages', log_probs.dtype)
  _same_shape(advantages, 'advantages', log_probs, 'log_probs')
  return -log_probs * advantages


def _gaussian_params(mean, std):
  mean = _checks.float_tensor(mean, 'mean')
  std = _checks.float_tensor(std, 'std', mean.dtype)
  _checks.require_known_rank(mean, 'mean')
  if mean.shape.rank < 1:
    raise ValueError('`mean` must have shape [..., A], got a scalar.')
  _same_shape(std, 'std', mean, 'mean')
  return mean, std


def _squashed_log_prob(pre_squash, standardised, std):
  """log N(u; mean, std) - sum log(1 - tanh(u)^2), summed over the last axis.

  Uses log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), which stays finite
  where tanh(u) rounds to +-1 (SAC appendix C).
  """
  gaussian = (-0.5 * tf.square(standardised) - tf.math.log(std) -
              _HALF_LOG_2PI)
  log_jacobian = 2.0 * (_LOG_2 - pre_squash - tf.nn.softplus(-2.0 * pre_squash))
  return tf.reduce_sum(gaussian - log_jacobian, axis=-1)


def squashed_gaussian_log_prob(mean: TensorLike, std: TensorLike,
                               actions: TensorLike,
                               epsilon: float = 1e-6) -> tf.Tensor:
  """log-density of a = tanh(u), u ~ N(mean, diag(std^2)) (SAC appendix C).

    log pi(a) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)],
    u = atanh(clip(a, -1 + epsilon, 1 - epsilon)).

  Args:
    mean: `[..., A]` pre-squash mean. Sets the dtype.
    std: `[..., A]` pre-squash standard deviation, > 0.
    actions: `[..., A]` squashed actions in [-1, 1].
    epsilon: clipping margin keeping atanh finite at +-1.

  Returns:
    `[...]` log-densities with respect to Lebesgue measure on (-1, 1)^A.

  Raises:
    ValueError: if the shapes differ.
  """
  mean, std = _gaussian_params(mean, std)
  actions = _checks.float_tensor(actions, 'actions', mean.dtype)
  _same_shape(actions, 'actions', mean, 'mean')
  pre_squash = tf.math.atanh(
      tf.clip_by_value(actions, -1.0 + epsilon, 1.0 - epsilon))
  return _squashed_log_prob(pre_squash, (pre_squash - mean) / std, std)


def squashed_gaussian_sample(
    mean: TensorLike, std: TensorLike, seed: Optional[TensorLike] = None,
    noise: Optional[TensorLike] = None) -> Tuple[tf.Tensor, tf.Tensor]:
  """Reparameterised sample a = tanh(mean + std * noise) and its log-density.

  The log-density is computed from the pre-squash sample u, so acting never
  goes through atanh(tanh(u)), which loses precision where |a| is near 1.
  Gradients flow to `mean` and `std` through both outputs (SAC's
  reparameterisation trick).

  Args:
    mean: `[..., A]` pre-squash mean. Sets the dtype.
    std: `[..., A]` pre-squash standard deviation, > 0.
    seed: shape `[2]` integer seed for `tf.random.stateless_normal` (Philox,
      so eager and XLA draw the same noise).
    noise: `[..., A]` standard normal noise, given instead of `seed`.

  Returns:
    `(action, log_prob)`: `[..., A]` actions in (-1, 1) and `[...]`
    log-densities.

  Raises:
    ValueError: unless exactly one of `seed` and `noise` is given, or if
      `noise` has the wrong shape.
  """
  mean, std = _gaussian_params(mean, std)
  if (seed is None) == (noise is None):
    raise ValueError('Exactly one of `seed` and `noise` must be given; '
                     'randomness is explicit so runs are reproducible.')
  if noise is None:
    # Philox explicitly: the default algorithm differs between eager and XLA,
    # so the same seed would act differently inside jit_compile.
    noise = tf.random.stateless_normal(tf.shape(mean), seed, dtype=mean.dtype,
                                       alg='philox')
  else:
    noise = _checks.float_tensor(noise, 'noise', mean.dtype)
    _same_shape(noise, 'noise', mean, 'mean')
  pre_squash = mean + std * noise
  return tf.tanh(pre_squash), _squashed_log_prob(pre_squash, noise, std)


def gaussian_kl(mean_p: TensorLike, std_p: TensorLike, mean_q: TensorLike,
                std_q: TensorLike) -> tf.Tensor:
  """KL(p || q) between diagonal Gaussians, summed over the last axis.

    KL = sum_i log(std_q / std_p) + (std_p^2 + (mean_p - mean_q)^2)
         / (2 std_q^2) - 1/2.

  Applied to pre-squash parameters this is also the KL between the
  tanh-squashed policies, since KL is invariant under the bijection tanh.

  Args:
    mean_p: `[..., A]`. Sets the dtype.
    std_p: `[..., A]`, > 0.
    mean_q: `[..., A]`.
    std_q: `[..., A]`, > 0.

  Returns:
    `[...]` KL divergences.

  Raises:
    ValueError: if the shapes differ.
  """
  mean_p = _checks.float_tensor(mean_p, 'mean_p')
  dtype = mean_p.dtype
  std_p = _checks.float_tensor(std_p, 'std_p', dtype)
  mean_q = _checks.float_tensor(mean_q, 'mean_q', dtype)
  std_q = _checks.float_tensor(std_q, 'std_q', dtype)
  _checks.require_known_rank(mean_p, 'mean_p')
  if mean_p.shape.rank < 1:
    raise ValueError('`mean_p` must have shape [..., A], got a scalar.')
  for tensor, name in ((std_p, 'std_p'), (mean_q, 'mean_q'), (std_q, 'std_q')):
    _same_shape(tensor, name, mean_p, 'mean_p')
  variance_ratio = tf.square(std_p / std_q)
  return tf.reduce_sum(
      0.5 * (variance_ratio + tf.square((mean_p - mean_q) / std_q) - 1.0 -
             tf.math.log(variance_ratio)),
      axis=-1)


def gaussian_kl_to_standard_normal(mean: TensorLike,
                                   std: TensorLike) -> tf.Tensor:
  """KL(N(mean, diag(std^2)) || N(0, I)), summed over the last axis.

    KL = sum_i 0.5 (std_i^2 + mean_i^2 - 1) - log std_i.

  STAC section 4.2 / supplement 9.3 regularise continuous-control policies
  with this term (on the pre-squash Gaussian) instead of an entropy bonus.

  Args:
    mean: `[..., A]` pre-squash mean. Sets the dtype.
    std: `[..., A]` pre-squash standard deviation, > 0.

  Returns:
    `[...]` KL divergences.

  Raises:
    ValueError: if the shapes differ.
  """
  mean, std = _gaussian_params(mean, std)
  return tf.reduce_sum(
      0.5 * (tf.square(std) + tf.square(mean) - 1.0) - tf.math.log(std),
      axis=-1)
