"""A small regression problem with the shape of a meta-gradient RL update.

The inner loss bootstraps from a stop-gradiented prediction (like a TD
target) scaled by a metaparameter and weights its terms by others; the outer
loss has a stop-gradiented term too, so finite differences only agree with
the meta-gradient if the engine anchors stop-gradients correctly.
"""

import numpy as np
import tensorflow as tf

from tf_metagrad.networks import params as params_lib
from tf_metagrad.networks import primitives


def make_model(seed=0, dtype="float64"):
  tf.keras.utils.set_random_seed(seed)
  model = primitives.MLP([6, 1], dtype=dtype)
  model.build([None, 3])
  return model


def make_batches(num, seed=0):
  rng = np.random.default_rng(seed)
  return [(tf.constant(rng.normal(size=(5, 3))),
           tf.constant(rng.normal(size=(5,))),
           tf.constant(rng.normal(size=(5, 3)))) for _ in range(num)]


def make_meta():
  return {"shift": tf.constant(0.3, tf.float64),
          "weights": tf.constant([0.2, -0.4], tf.float64)}


def losses(model):
  """(inner_loss_fn, outer_loss_fn) in the engine's calling convention."""

  def predict(params, x):
    return params_lib.call_with_weights(model, params, x)[:, 0]

  def reference(params, ref, x):
    out = predict(params if ref is None else ref.params, x)
    return tf.stop_gradient(out)

  def inner_loss(params, meta, batch, ref):
    x, y, x_next = batch
    target = y + tf.sigmoid(meta["shift"]) * reference(params, ref, x_next)
    pred = predict(params, x)
    loss = (tf.nn.softplus(meta["weights"][0])
            * tf.reduce_sum(tf.square(target - pred))
            + 0.1 * tf.sigmoid(meta["weights"][1])
            * tf.reduce_sum(tf.square(pred)))
    return loss, {}

  def outer_loss(params, batch, ref):
    x, y, x_next = batch
    pred = predict(params, x)
    anchor = reference(params, ref, x_next)
    return (tf.reduce_sum(tf.square(y - pred))
            + 0.5 * tf.reduce_sum(anchor * predict(params, x_next))), {}

  return inner_loss, outer_loss
