"""MetaParameters (STAC) and the FRODO target network."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests import finite_differences as fd
from tests.networks import helpers
from tf_metagrad import networks


def _stac_specs():
  return {
      'gamma': networks.MetaParamSpec(),
      'lambda_': networks.MetaParamSpec(),
      'g_v': networks.MetaParamSpec(outer_value=0.25),
      'g_e': {'outer_value': 0.01},
      'quantile_gamma': networks.MetaParamSpec(shape=(3,),
                                               init_logit=[0.0, 1.0, 4.6]),
  }


def test_meta_parameters_values_follow_stac_algorithm_2():
  meta = networks.MetaParameters(_stac_specs())
  names = [v.name.split('/')[-1].split(':')[0]
           for v in meta.trainable_variables]
  assert names == sorted(_stac_specs())
  values = meta.values()
  s = helpers.sigmoid(4.6)
  np.testing.assert_allclose(values['gamma'].numpy(), s, rtol=1e-6)
  np.testing.assert_allclose(values['lambda_'].numpy(), s, rtol=1e-6)
  np.testing.assert_allclose(values['g_v'].numpy(), 0.25 * s, rtol=1e-6)
  np.testing.assert_allclose(values['g_e'].numpy(), 0.01 * s, rtol=1e-6)
  np.testing.assert_allclose(values['quantile_gamma'].numpy(),
                             helpers.sigmoid(np.array([0.0, 1.0, 4.6])),
                             rtol=1e-6)
  assert abs(s - 0.99) < 1e-3
  logits = meta.logits()
  assert set(logits) == set(_stac_specs())
  assert logits['gamma'] is meta.trainable_variables[2]


def test_transform_is_pure_and_checks_names():
  meta = networks.MetaParameters(_stac_specs(), dtype='float64')
  got = meta.transform({'g_v': tf.constant(-1.0, tf.float64)})
  np.testing.assert_allclose(got['g_v'].numpy(), 0.25 * helpers.sigmoid(-1.0),
                             rtol=1e-12)
  np.testing.assert_allclose(meta.values()['g_v'].numpy(),
                             0.25 * helpers.sigmoid(4.6), rtol=1e-12)
  with pytest.raises(ValueError, match="unknown metaparameters \\['gama'\\]"):
    meta.transform({'gama': tf.constant(0.0)})


def test_meta_parameters_gradient_and_substitution():
  meta = networks.MetaParameters(_stac_specs(), dtype='float64')
  logits = [tf.constant(np.linspace(-1, 1, int(np.prod(v.shape))).reshape(
      v.shape)) for v in meta.trainable_variables]

  def total(arrays):
    values = networks.call_with_weights(
        meta, [tf.constant(a) for a in arrays], None)
    return sum(tf.reduce_sum(v * (i + 1.0))
               for i, (_, v) in enumerate(sorted(values.items())))

  with tf.GradientTape() as tape:
    tape.watch(logits)
    value = total(logits)
  grads = tape.gradient(value, logits)
  fd.check_gradient_list(lambda arrays: float(total(arrays)),
                         [l.numpy() for l in logits], grads)
  specs = meta.specs
  for i, (name, g, l) in enumerate(zip(sorted(specs), grads, logits)):
    sig = helpers.sigmoid(l.numpy())
    outer = specs[name].outer_value or 1.0
    np.testing.assert_allclose(g.numpy(), (i + 1.0) * outer * sig * (1 - sig),
                               rtol=1e-12)


def test_meta_parameters_config_and_checkpoint(tmp_path):
  meta = networks.MetaParameters(_stac_specs())
  meta.trainable_variables[0].assign(0.5)
  clone = networks.MetaParameters.from_config(meta.get_config())
  assert clone.get_config() == meta.get_config()
  np.testing.assert_allclose(clone.values()['g_e'].numpy(),
                             0.01 * helpers.sigmoid(4.6), rtol=1e-6)
  path = tf.train.Checkpoint(meta=meta).save(os.path.join(tmp_path, 'ckpt'))
  tf.train.Checkpoint(meta=clone).restore(path).assert_consumed()
  for a, b in zip(meta.trainable_variables, clone.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  with pytest.raises(ValueError, match='does not broadcast'):
    networks.MetaParameters({'x': networks.MetaParamSpec(shape=(2,),
                                                         init_logit=[1, 2, 3])})


def np_frodo(net, rewards, discounts, next_values, embedding=None):
  """The meta-network written out in numpy, in `net`'s direction."""
  features = np.stack([rewards, discounts, next_values], axis=-1)
  if embedding is not None:
    features = np.concatenate([features, embedding], axis=-1)
  cell = net.lstm.cell
  batch = rewards.shape[1]
  zeros = np.zeros((batch, net.units))
  outputs, _, _ = helpers.np_lstm(
      features, zeros, zeros, cell.kernel.numpy(),
      cell.recurrent_kernel.numpy(), cell.bias.numpy(), reverse=net.reverse)
  return outputs @ net.linear.kernel.numpy() + net.linear.bias.numpy()


def _trajectory(seed=0, steps=5, batch=3):
  rng = np.random.default_rng(seed)
  discounts = np.ones((steps, batch))
  discounts[2, 1] = 0.0
  return (rng.normal(size=(steps, batch)), discounts,
          rng.normal(size=(steps, batch)))


@pytest.mark.parametrize('reverse', [False, True])
def test_frodo_target_matches_lstm_reference(reverse):
  net = networks.FrodoTargetNetwork(units=4, reverse=reverse,
                                    dtype='float64')
  net.build([None, None])
  assert net.lstm.cell.kernel.shape == (3, 16)
  helpers.randomize(net)
  rewards, discounts, next_values = _trajectory()
  got = net(rewards, discounts, next_values).numpy()
  expected = np_frodo(net, rewards, discounts, next_values)[..., 0]
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  # Forward (the default, Qiu (2021) section 5.2), the target at the first
  # step depends only on the first inputs; backwards, the last on the last.
  first, rest = (-1, slice(None, -1)) if reverse else (0, slice(1, None))
  moved = rewards.copy()
  moved[rest] += 1.0
  after = net(moved, discounts, next_values).numpy()
  np.testing.assert_array_equal(after[first], got[first])
  assert not np.allclose(after[-1 - first], got[-1 - first])


def test_frodo_target_default_is_32_units():
  net = networks.FrodoTargetNetwork()
  assert net.units == 32 and net.output_size == 1
  net.build([None, None])
  # Qiu (2021): a 32-unit LSTM over [r, discount, v] and a 32 -> 1 linear map.
  assert net.lstm.cell.kernel.shape == (3, 4 * 32)
  assert net.lstm.cell.recurrent_kernel.shape == (32, 4 * 32)
  assert net.linear.kernel.shape == (32, 1)
  rewards, discounts, next_values = _trajectory(6)
  assert net(rewards, discounts, next_values).shape == rewards.shape


def test_frodo_embedding_and_distributional_output():
  rewards, discounts, next_values = _trajectory(1)
  embedding = np.random.default_rng(2).normal(size=rewards.shape + (2,))
  net = networks.FrodoTargetNetwork(units=3, output_size=4,
                                    use_observation_embedding=True,
                                    dtype='float64')
  got = net(rewards, discounts, next_values, embedding)
  assert got.shape == rewards.shape + (4,)
  assert net.lstm.cell.kernel.shape == (5, 12)
  helpers.randomize(net)
  np.testing.assert_allclose(
      net(rewards, discounts, next_values, embedding).numpy(),
      np_frodo(net, rewards, discounts, next_values, embedding), rtol=1e-12)
  eager_built = networks.FrodoTargetNetwork(
      units=3, use_observation_embedding=True, embedding_size=2)
  eager_built.build([None, None])
  assert eager_built.lstm.cell.kernel.shape == (5, 12)
  with pytest.raises(ValueError, match='no `observation_embedding`'):
    net(rewards, discounts, next_values)
  with pytest.raises(ValueError, match='use_observation_embedding=False'):
    networks.FrodoTargetNetwork()(rewards, discounts, next_values, embedding)


def test_frodo_weights_substitute_with_fd_gradients(fd_seed):
  net = networks.FrodoTargetNetwork(units=2, dtype='float64')
  net.build([None, None])
  helpers.randomize(net, seed=fd.shaken(3, fd_seed))
  rewards, discounts, next_values = _trajectory(fd.shaken(4, fd_seed),
                                                steps=4, batch=2)

  def loss(arrays):
    targets = networks.call_with_weights(
        net, [tf.constant(a) for a in arrays], rewards, discounts,
        next_values)
    return tf.reduce_sum(tf.sin(targets) * (1.0 + rewards))

  weights = [tf.identity(v) for v in net.trainable_variables]
  with tf.GradientTape() as tape:
    tape.watch(weights)
    value = loss(weights)
  grads = tape.gradient(value, weights)
  fd.check_gradient_list(lambda arrays: float(loss(arrays)),
                         [w.numpy() for w in weights], grads,
                         rng=np.random.default_rng(fd_seed))


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_frodo_config_and_load_model(tmp_path, dtype):
  net = networks.FrodoTargetNetwork(units=3, output_size=2, dtype=dtype)
  clone = networks.FrodoTargetNetwork.from_config(net.get_config())
  assert clone.get_config() == net.get_config()
  r, d, v = [tf.keras.Input(shape=(3,), dtype=dtype) for _ in range(3)]
  model = tf.keras.Model([r, d, v], net(r, d, v))
  assert all(w.dtype == dtype for w in model.trainable_variables)
  helpers.randomize(model)
  batch = [x.astype(dtype) for x in _trajectory(5)]
  expected = model(batch)
  path = os.path.join(tmp_path, 'frodo.keras')
  model.save(path)
  loaded = tf.keras.models.load_model(path)
  np.testing.assert_array_equal(loaded(batch).numpy(), expected.numpy())
