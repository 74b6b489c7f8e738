"""Policy distributions as the learners see them, over `tf_metagrad.ops.policy`.

Both kinds expose the same four quantities the actor-critic losses need, so a
learner is written once for discrete (Atari, toy domains) and continuous (DM
Control) actions:

- `log_prob(actions)`;
- `regularizer()`: the per-step bonus the entropy term maximises. For a
  categorical policy it is the entropy; for a tanh-squashed Gaussian STAC
  (section 4.2) replaces the entropy by a KL to a standard normal, so the
  bonus is -KL(N(mean, std) || N(0, I)) of the pre-squash Gaussian;
- `kl(other)`: KL(self || other), used by STAC's outer KL term;
- `mode()` / `sample(seed)` for acting.
"""

from typing import NamedTuple, Tuple

import tensorflow as tf
from tensorflow.types.experimental import TensorLike

from tf_metagrad.ops import policy as policy_ops


class Categorical(NamedTuple):
  """Softmax policy over `logits [..., A]`."""

  logits: tf.Tensor

  def log_prob(self, actions: TensorLike) -> tf.Tensor:
    return policy_ops.categorical_log_prob(self.logits, actions)

  def regularizer(self) -> tf.Tensor:
    return policy_ops.categorical_entropy(self.logits)

  def kl(self, other: "Categorical") -> tf.Tensor:
    return policy_ops.categorical_kl(self.logits, other.logits)

  def mode(self) -> tf.Tensor:
    return tf.argmax(self.logits, axis=-1, output_type=tf.int32)

  def sample(self, seed: TensorLike) -> Tuple[tf.Tensor, tf.Tensor]:
    """Samples actions; `seed` is a stateless-random seed of shape [2]."""
    flat = tf.reshape(self.logits, [-1, tf.shape(self.logits)[-1]])
    draws = tf.random.stateless_categorical(
        tf.cast(flat, tf.float32), 1, seed=seed, dtype=tf.int32)
    actions = tf.reshape(draws, tf.shape(self.logits)[:-1])
    return actions, self.log_prob(actions)

  def stop_gradient(self) -> "Categorical":
    return Categorical(tf.stop_gradient(self.logits))


class SquashedGaussian(NamedTuple):
  """tanh(u), u ~ N(mean, diag(std^2)); actions live in [-1, 1]^A."""

  mean: tf.Tensor
  std: tf.Tensor

  def log_prob(self, actions: TensorLike) -> tf.Tensor:
    return policy_ops.squashed_gaussian_log_prob(self.mean, self.std, actions)

  def regularizer(self) -> tf.Tensor:
    return -policy_ops.gaussian_kl_to_standard_normal(self.mean, self.std)

  def kl(self, other: "SquashedGaussian") -> tf.Tensor:
    return policy_ops.gaussian_kl(self.mean, self.std, other.mean, other.std)

  def mode(self) -> tf.Tensor:
    return tf.tanh(self.mean)

  def sample(self, seed: TensorLike) -> Tuple[tf.Tensor, tf.Tensor]:
    noise = tf.random.stateless_normal(
        tf.shape(self.mean), seed=seed, dtype=self.mean.dtype)
    return policy_ops.squashed_gaussian_sample(self.mean, self.std, noise=noise)

  def stop_gradient(self) -> "SquashedGaussian":
    return SquashedGaussian(
        tf.stop_gradient(self.mean), tf.stop_gradient(self.std))
