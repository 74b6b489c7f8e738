"""Small models and numpy references shared by the network tests."""

import numpy as np


def randomize(layer, seed=0, scale=0.5):
  """Assigns normal random values to every variable (biases included)."""
  rng = np.random.default_rng(seed)
  for v in layer.trainable_variables:
    values = rng.normal(scale=scale, size=v.shape)
    v.assign(values.astype(v.dtype.as_numpy_dtype))


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_conv2d(x, kernel, bias, stride, padding):
  """Brute-force NHWC cross-correlation with TF's SAME/VALID padding."""
  batch, height, width, _ = x.shape
  k, _, _, filters = kernel.shape
  if padding == 'SAME':
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + k - height, 0)
    pad_w = max((out_w - 1) * stride + k - width, 0)
    x = np.pad(x, [(0, 0), (pad_h // 2, pad_h - pad_h // 2),
                   (pad_w // 2, pad_w - pad_w // 2), (0, 0)])
  else:
    out_h = (height - k) // stride + 1
    out_w = (width - k) // stride + 1
  out = np.zeros((batch, out_h, out_w, filters))
  for i in range(out_h):
    for j in range(out_w):
      patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
      out[:, i, j, :] = np.einsum('bhwc,hwcf->bf', patch, kernel)
  return out + bias


def np_lstm_step(x, h, c, kernel, recurrent, bias, forget_bias=1.0):
  gates = x @ kernel + h @ recurrent + bias
  i, f, g, o = np.split(gates, 4, axis=-1)
  c = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(g)
  h = sigmoid(o) * np.tanh(c)
  return h, c


def np_lstm(xs, h, c, kernel, recurrent, bias, reset=None, reverse=False):
  steps = xs.shape[0]
  outputs = np.zeros(xs.shape[:2] + (h.shape[-1],))
  order = range(steps - 1, -1, -1) if reverse else range(steps)
  for t in order:
    if reset is not None:
      h = np.where(reset[t][:, None], 0.0, h)
      c = np.where(reset[t][:, None], 0.0, c)
    h, c = np_lstm_step(xs[t], h, c, kernel, recurrent, bias)
    outputs[t] = h
  return outputs, h, c
