"""Torsos and the recurrent core: architecture, dtypes, serialisation."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.networks import helpers
from tf_metagrad import networks


def np_max_pool_same(x, k=3, stride=2):
  _, height, width, _ = x.shape
  out_h, out_w = -(-height // stride), -(-width // stride)
  pad_h = max((out_h - 1) * stride + k - height, 0)
  pad_w = max((out_w - 1) * stride + k - width, 0)
  x = np.pad(x, [(0, 0), (pad_h // 2, pad_h - pad_h // 2),
                 (pad_w // 2, pad_w - pad_w // 2), (0, 0)],
             constant_values=-np.inf)
  out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
  for i in range(out_h):
    for j in range(out_w):
      out[:, i, j] = x[:, i * stride:i * stride + k,
                       j * stride:j * stride + k].max(axis=(1, 2))
  return out


def np_residual_torso(torso, pixels, stride, pool):
  """The STAC / IMPALA residual torso written out with numpy."""
  relu = lambda z: np.maximum(z, 0.0)
  conv = lambda layer, z, s=1: helpers.np_conv2d(
      z, layer.kernel.numpy(), layer.bias.numpy(), s, 'SAME')
  x = pixels.astype(np.float64) / 255.0
  n = torso.blocks_per_section
  for s, section_conv in enumerate(torso.section_convs):
    x = conv(section_conv, x, stride)
    if pool:
      x = np_max_pool_same(x)
    for b in range(n):
      conv_a = torso.block_convs[2 * n * s + 2 * b]
      conv_b = torso.block_convs[2 * n * s + 2 * b + 1]
      x = x + conv(conv_b, relu(conv(conv_a, relu(x))))
  x = relu(x).reshape(x.shape[0], -1)
  return relu(x @ torso.linear.kernel.numpy() + torso.linear.bias.numpy())


def _pixels(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=shape).astype(
      np.uint8)


@pytest.mark.parametrize('cls,stride,pool,channels', [
    (networks.AtariResNetTorso, 1, True, 2),
    (networks.ConvTorso, 2, False, 3),
])
def test_residual_torsos_match_numpy(cls, stride, pool, channels):
  torso = cls(channels=(2, 3, 2), blocks_per_section=2, output_size=5,
              dtype='float64')
  torso.build([None, 11, 11, channels])
  helpers.randomize(torso, scale=0.7)
  pixels = _pixels((2, 11, 11, channels))
  expected = np_residual_torso(torso, pixels, stride, pool)
  got = torso(tf.constant(pixels)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
  assert np.any(expected > 0)
  # Float pixels in [0, 255] are scaled the same way.
  np.testing.assert_allclose(torso(pixels.astype(np.float64)).numpy(), got,
                             rtol=1e-12)


def test_default_atari_and_control_architectures():
  atari = networks.AtariResNetTorso()
  atari.build([None, 84, 84, 4])
  shapes = [v.shape.as_list() for v in atari.trainable_variables]
  # 3 sections x (1 + 2 blocks x 2) convs, each kernel + bias, then dense.
  assert len(shapes) == 3 * 5 * 2 + 2
  assert [3, 3, 4, 16] in shapes and [3, 3, 16, 32] in shapes
  # 84 -> 42 -> 21 -> 11 after the three stride-2 poolings.
  assert atari.linear.kernel.shape == (11 * 11 * 32, 256)
  control = networks.ConvTorso()
  control.build([None, 84, 84, 3])
  assert control.section_convs[0].strides == (2, 2)
  assert control.linear.kernel.shape == (11 * 11 * 32, 256)
  assert len(control.trainable_variables) == 3 * 5 * 2 + 2


def test_pixel_torso_accepts_leading_time_and_batch_dims():
  torso = networks.AtariResNetTorso(channels=(2,), blocks_per_section=1,
                                    output_size=3)
  pixels = _pixels((3, 2, 8, 8, 4))
  got = torso(pixels)
  assert got.shape == (3, 2, 3)
  flat = torso(pixels.reshape(6, 8, 8, 4)).numpy().reshape(3, 2, 3)
  np.testing.assert_allclose(got.numpy(), flat, rtol=1e-6)


def test_mlp_torso_is_relu_mlp():
  torso = networks.MLPTorso((4, 3), dtype='float64')
  torso.build([None, 2])
  helpers.randomize(torso)
  x = np.random.default_rng(1).normal(size=(5, 2))
  h = x
  for linear in torso.mlp.linears:
    h = np.maximum(h @ linear.kernel.numpy() + linear.bias.numpy(), 0.0)
  np.testing.assert_allclose(torso(x).numpy(), h, rtol=1e-12)
  assert torso(x[None]).shape == (1, 5, 3)


def test_mlp_torso_and_core_defaults_follow_stac_table_2():
  torso = networks.MLPTorso()
  assert torso.hidden_sizes == (256, 256)
  torso.build([None, 7])
  assert [linear.kernel.shape.as_list() for linear in torso.mlp.linears] == [
      [7, 256], [256, 256]]
  assert all(linear.activation is tf.keras.activations.relu
             for linear in torso.mlp.linears)
  core = networks.RecurrentCore()
  assert core.units == 256
  core.build([None, None, 7])
  assert core.lstm.cell.kernel.shape == (7, 4 * 256)
  assert core.lstm.cell.recurrent_kernel.shape == (256, 4 * 256)
  out, state = core.step(tf.ones([2, 7]), core.initial_state(2))
  assert out.shape == (2, 256) and state.cell.shape == (2, 256)


def test_recurrent_core_unroll_equals_actor_steps():
  core = networks.RecurrentCore(3, dtype='float64')
  core.build([None, None, 2])
  helpers.randomize(core)
  rng = np.random.default_rng(2)
  xs = rng.normal(size=(6, 4, 2))
  reset = rng.uniform(size=(6, 4)) < 0.3
  reset[0, 0] = True
  state0 = core.initial_state(4)
  np.testing.assert_array_equal(state0.hidden.numpy(), np.zeros((4, 3)))
  state0 = networks.LSTMState(tf.constant(rng.normal(size=(4, 3))),
                              tf.constant(rng.normal(size=(4, 3))))
  outputs, final = core.unroll(xs, state0, reset)
  state = state0
  for t in range(6):
    out, state = core.step(xs[t], state, reset[t])
    np.testing.assert_allclose(outputs[t].numpy(), out.numpy(), rtol=1e-12)
  np.testing.assert_allclose(final.cell.numpy(), state.cell.numpy(),
                             rtol=1e-12)
  called, _ = core(xs, state0, reset)
  np.testing.assert_array_equal(called.numpy(), outputs.numpy())
  cell = core.lstm.cell
  expected, _, _ = helpers.np_lstm(
      xs, state0.hidden.numpy(), state0.cell.numpy(), cell.kernel.numpy(),
      cell.recurrent_kernel.numpy(), cell.bias.numpy(), reset)
  np.testing.assert_allclose(outputs.numpy(), expected, rtol=1e-12)


def test_recurrent_core_builds_on_first_step():
  core = networks.RecurrentCore(5)
  out, state = core.step(tf.ones([2, 3]), core.initial_state(2))
  assert out.shape == (2, 5) and state.cell.shape == (2, 5)
  assert core.lstm.cell.kernel.shape == (3, 20)


_TORSOS = [
    ('mlp', lambda d: networks.MLPTorso((4, 3), dtype=d), (5,), 'float'),
    ('atari', lambda d: networks.AtariResNetTorso(
        (2, 3), blocks_per_section=1, output_size=4, dtype=d), (9, 9, 4),
     'uint8'),
    ('control', lambda d: networks.ConvTorso(
        (2, 2), blocks_per_section=2, output_size=4, dtype=d), (9, 9, 3),
     'uint8'),
    ('core', lambda d: networks.RecurrentCore(3, dtype=d), (2, 5), 'float'),
]


def _inputs(shape, kind, dtype):
  if kind == 'uint8':
    return _pixels((2,) + shape)
  return np.random.default_rng(3).normal(size=(2,) + shape).astype(dtype)


@pytest.mark.parametrize('name,make,shape,kind', _TORSOS)
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_torso_dtype_config_and_explicit_build(name, make, shape, kind,
                                               dtype):
  del name
  layer = make(dtype)
  layer.build((None,) + shape)
  variables = layer.trainable_variables
  assert variables and all(v.dtype == dtype for v in variables)
  out = tf.nest.flatten(layer(_inputs(shape, kind, dtype)))
  assert all(o.dtype == dtype for o in out)
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone.build((None,) + shape)
  assert ([v.shape for v in clone.trainable_variables]
          == [v.shape for v in variables])


@pytest.mark.parametrize('name,make,shape,kind', _TORSOS)
def test_torso_round_trips_load_model(tmp_path, name, make, shape, kind):
  inputs = tf.keras.Input(shape=shape,
                          dtype='uint8' if kind == 'uint8' else 'float32')
  outputs = make('float32')(inputs)
  model = tf.keras.Model(inputs, outputs)
  helpers.randomize(model, seed=4, scale=0.3)
  x = _inputs(shape, kind, 'float32')
  expected = tf.nest.flatten(model(x))
  path = os.path.join(tmp_path, f'{name}.keras')
  model.save(path)
  loaded = tf.keras.models.load_model(path)
  assert type(loaded.layers[1]) is type(model.layers[1])
  for e, g in zip(expected, tf.nest.flatten(loaded(x))):
    np.testing.assert_array_equal(g.numpy(), e.numpy())
