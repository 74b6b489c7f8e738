"""Linear, Conv2D, LSTMCell, StaticLSTM and MLP against numpy references."""

import numpy as np
import pytest
import tensorflow as tf

from tests.networks import helpers
from tf_metagrad import networks


def test_linear_matches_numpy_on_any_leading_shape():
  layer = networks.Linear(4, activation='relu', dtype='float64')
  layer.build([None, 3])
  helpers.randomize(layer)
  x = np.random.default_rng(0).normal(size=(2, 5, 3))
  w, b = layer.kernel.numpy(), layer.bias.numpy()
  np.testing.assert_allclose(layer(x).numpy(), np.maximum(x @ w + b, 0.0),
                             rtol=1e-12)
  np.testing.assert_allclose(layer(x[0]).numpy(),
                             np.maximum(x[0] @ w + b, 0.0), rtol=1e-12)


@pytest.mark.parametrize('stride,padding,size', [(1, 'SAME', 6),
                                                  (2, 'SAME', 7),
                                                  (2, 'VALID', 7)])
def test_conv2d_matches_numpy(stride, padding, size):
  layer = networks.Conv2D(3, 3, strides=stride, padding=padding,
                          dtype='float64')
  layer.build([None, size, size, 2])
  helpers.randomize(layer)
  x = np.random.default_rng(1).normal(size=(2, size, size, 2))
  expected = helpers.np_conv2d(x, layer.kernel.numpy(), layer.bias.numpy(),
                               stride, padding)
  got = layer(x).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
  assert layer.compute_output_shape(x.shape) == got.shape


def test_lstm_cell_step_matches_numpy():
  cell = networks.LSTMCell(3, dtype='float64')
  cell.build([None, 2])
  helpers.randomize(cell)
  rng = np.random.default_rng(2)
  x, h, c = (rng.normal(size=(4, 2)), rng.normal(size=(4, 3)),
             rng.normal(size=(4, 3)))
  out, state = cell(x, networks.LSTMState(h, c))
  eh, ec = helpers.np_lstm_step(x, h, c, cell.kernel.numpy(),
                        cell.recurrent_kernel.numpy(), cell.bias.numpy())
  np.testing.assert_allclose(out.numpy(), eh, rtol=1e-12)
  np.testing.assert_allclose(state.hidden.numpy(), eh, rtol=1e-12)
  np.testing.assert_allclose(state.cell.numpy(), ec, rtol=1e-12)


def test_lstm_cell_forget_bias_is_one_at_init():
  cell = networks.LSTMCell(2)
  cell.build([None, 1])
  np.testing.assert_array_equal(cell.bias.numpy(), 0.0)
  # With zero weights the cell keeps sigmoid(1) of its memory.
  for v in cell.trainable_variables:
    v.assign(tf.zeros_like(v))
  _, state = cell(tf.zeros([1, 1]), networks.LSTMState(
      tf.zeros([1, 2]), tf.ones([1, 2])))
  np.testing.assert_allclose(state.cell.numpy(), helpers.sigmoid(1.0),
                             rtol=1e-6)


@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('with_reset', [False, True])
def test_static_lstm_matches_numpy_static_and_scan(reverse, with_reset):
  lstm = networks.StaticLSTM(3, reverse=reverse, dtype='float64')
  lstm.build([None, None, 2])
  helpers.randomize(lstm)
  rng = np.random.default_rng(3)
  xs = rng.normal(size=(5, 4, 2))
  h0, c0 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  reset = rng.uniform(size=(5, 4)) < 0.3 if with_reset else None
  cell = lstm.cell
  expected, eh, ec = helpers.np_lstm(xs, h0, c0, cell.kernel.numpy(),
                             cell.recurrent_kernel.numpy(), cell.bias.numpy(),
                             reset, reverse)
  state = networks.LSTMState(tf.constant(h0), tf.constant(c0))
  reset_t = None if reset is None else tf.constant(reset)
  out, final = lstm(tf.constant(xs), initial_state=state, reset=reset_t)
  np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
  np.testing.assert_allclose(final.hidden.numpy(), eh, rtol=1e-12)
  np.testing.assert_allclose(final.cell.numpy(), ec, rtol=1e-12)

  # Unknown T at trace time: the tf.scan path must agree.
  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, 4, 2], tf.float64),
      tf.TensorSpec([None, 4], tf.bool)])
  def dynamic(xs, reset):
    return lstm(xs, initial_state=state,
                reset=reset if with_reset else None)

  mask = reset if reset is not None else np.zeros((5, 4), bool)
  out_dyn, final_dyn = dynamic(tf.constant(xs), tf.constant(mask))
  np.testing.assert_allclose(out_dyn.numpy(), expected, rtol=1e-12)
  np.testing.assert_allclose(final_dyn.hidden.numpy(), eh, rtol=1e-12)
  np.testing.assert_allclose(final_dyn.cell.numpy(), ec, rtol=1e-12)


def test_static_lstm_reset_cuts_information_flow():
  lstm = networks.StaticLSTM(2, reverse=True, dtype='float64')
  lstm.build([None, None, 1])
  xs = tf.constant(np.random.default_rng(4).normal(size=(4, 1, 1)))
  reset = tf.constant([[False], [True], [False], [False]])
  with tf.GradientTape() as tape:
    tape.watch(xs)
    out, _ = lstm(xs, reset=reset)
    early = tf.reduce_sum(out[:2])
  grad = tape.gradient(early, xs).numpy()
  # Backwards in time, the state is zeroed before step 1: steps 2, 3 cannot
  # influence the outputs at 0 and 1.
  np.testing.assert_array_equal(grad[2:], 0.0)
  assert np.all(grad[:2] != 0.0)


def test_mlp_layers_and_final_activation():
  mlp = networks.MLP((4, 2), dtype='float64')
  mlp.build([None, 3])
  helpers.randomize(mlp)
  mlp.linears[1].bias.assign([-1.0, 1.0])
  x = np.random.default_rng(5).normal(size=(6, 3))
  (w0, b0), (w1, b1) = [(l.kernel.numpy(), l.bias.numpy())
                        for l in mlp.linears]
  expected = np.maximum(x @ w0 + b0, 0.0) @ w1 + b1
  np.testing.assert_allclose(mlp(x).numpy(), expected, rtol=1e-12)
  # Both the hidden ReLU and the linear output are exercised.
  assert np.any(x @ w0 + b0 < 0) and np.any(expected < 0)


@pytest.mark.parametrize('make,shape', [
    (lambda d: networks.Linear(3, activation='tanh', dtype=d), [None, 2]),
    (lambda d: networks.Conv2D(3, (3, 2), strides=(2, 1), padding='valid',
                               dtype=d), [None, 5, 5, 2]),
    (lambda d: networks.LSTMCell(3, forget_bias=0.5, dtype=d), [None, 2]),
    (lambda d: networks.StaticLSTM(3, reverse=True, dtype=d),
     [None, None, 2]),
    (lambda d: networks.MLP((4, 3), activate_final=True, dtype=d),
     [None, 2]),
])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_build_config_round_trip_and_dtype(make, shape, dtype):
  layer = make(dtype)
  layer.build(shape)
  assert layer.built and layer.trainable_variables
  assert all(v.dtype == dtype for v in layer.trainable_variables)
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone.build(shape)
  assert ([v.shape for v in clone.trainable_variables]
          == [v.shape for v in layer.trainable_variables])
