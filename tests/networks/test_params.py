"""Weight substitution: values, gradients, errors, tracing and threads."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from tests import finite_differences as fd
from tests.networks import helpers
from tf_metagrad import networks
from tf_metagrad.networks import params


def _agent(dtype='float64', hidden=4, obs=3, actions=3):
  """Functional torso + policy/value head model."""
  inputs = tf.keras.Input(shape=(obs,), dtype=dtype)
  torso = networks.MLPTorso((hidden,), dtype=dtype)(inputs)
  outputs = networks.PolicyValueHead(actions, (hidden,), dtype=dtype)(torso)
  model = tf.keras.Model(inputs, outputs)
  helpers.randomize(model)
  return model


class _ConvLSTMNet(tf.keras.Model):
  """Conv -> Linear -> backward StaticLSTM -> Linear, to cover every kind."""

  def __init__(self, dtype='float64'):
    super().__init__(dtype=dtype)
    self.conv = networks.Conv2D(2, 3, strides=2, dtype=dtype)
    self.embed = networks.Linear(3, activation='tanh', dtype=dtype)
    self.lstm = networks.StaticLSTM(3, reverse=True, dtype=dtype)
    self.out = networks.Linear(2, dtype=dtype)

  def call(self, frames):
    t, b = frames.shape[:2]
    x = self.conv(tf.reshape(frames, [t * b] + frames.shape[2:].as_list()))
    x = self.embed(tf.reshape(x, [t, b, -1]))
    outputs, _ = self.lstm(x)
    return self.out(outputs)


def _frames(seed=0):
  return tf.constant(np.random.default_rng(seed).normal(size=(3, 2, 5, 5, 2)))


def _conv_lstm_net():
  net = _ConvLSTMNet()
  net(_frames())
  helpers.randomize(net, seed=1)
  return net


def _obs(seed=0, batch=5, obs=3):
  return tf.constant(np.random.default_rng(seed).normal(size=(batch, obs)))


def _scalar(outputs):
  """A scalar touching every output, with non-uniform weights."""
  flat = tf.nest.flatten(outputs)
  total = 0.0
  for i, out in enumerate(flat):
    weights = tf.cast(tf.reshape(tf.range(tf.size(out)), out.shape), out.dtype)
    total += tf.reduce_sum(tf.sin(out * (i + 1.0)) * (1.0 + 0.1 * weights))
  return total


def test_read_without_scope_returns_the_variable():
  v = tf.Variable([1.0, 2.0])
  assert params.read(v) is v


@pytest.mark.parametrize('make,inputs', [(_agent, _obs),
                                         (_conv_lstm_net, _frames)])
def test_identity_substitution_gives_identical_outputs(make, inputs):
  model = make()
  x = inputs()
  expected = model(x)
  got = networks.call_with_weights(
      model, [tf.identity(v) for v in model.trainable_variables], x)
  for e, g in zip(tf.nest.flatten(expected), tf.nest.flatten(got)):
    np.testing.assert_array_equal(e.numpy(), g.numpy())
  none = networks.call_with_weights(model, None, x)
  for e, g in zip(tf.nest.flatten(expected), tf.nest.flatten(none)):
    np.testing.assert_array_equal(e.numpy(), g.numpy())


@pytest.mark.parametrize('make,inputs', [(_agent, _obs),
                                         (_conv_lstm_net, _frames)])
def test_perturbed_weights_match_a_fresh_copy(make, inputs):
  model = make()
  x = inputs()
  rng = np.random.default_rng(3)
  perturbed = [v.numpy() + rng.normal(scale=0.3, size=v.shape)
               for v in model.trainable_variables]
  got = networks.call_with_weights(
      model, [tf.constant(p) for p in perturbed], x)
  copy = make()
  copy.set_weights(perturbed)
  expected = copy(x)
  for e, g in zip(tf.nest.flatten(expected), tf.nest.flatten(got)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-13, atol=1e-13)
  # The variables themselves are untouched.
  for v, p in zip(model.trainable_variables, perturbed):
    assert not np.allclose(v.numpy(), p)


@pytest.mark.parametrize('make,inputs', [(_agent, _obs),
                                         (_conv_lstm_net, _frames)])
def test_gradients_wrt_substitutes_match_variables_and_fd(make, inputs,
                                                         fd_seed):
  model = make()
  helpers.randomize(model, seed=fd_seed)
  x = inputs(seed=fd_seed)
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    loss = _scalar(model(x))
  var_grads = tape.gradient(loss, variables)
  weights = [tf.identity(v) for v in variables]
  with tf.GradientTape() as tape:
    tape.watch(weights)
    loss = _scalar(networks.call_with_weights(model, weights, x))
  sub_grads = tape.gradient(loss, weights)
  for vg, sg in zip(var_grads, sub_grads):
    np.testing.assert_allclose(sg.numpy(), vg.numpy(), rtol=1e-12, atol=1e-14)

  def value(arrays):
    return _scalar(networks.call_with_weights(
        model, [tf.constant(a) for a in arrays], x))

  fd.check_gradient_list(value, [w.numpy() for w in weights], sub_grads,
                         rng=np.random.default_rng(fd_seed))


def test_wrong_length_shape_and_dtype_raise_naming_the_variable():
  model = _agent()
  variables = model.trainable_variables
  weights = [tf.identity(v) for v in variables]
  with pytest.raises(ValueError, match=f'{len(variables)} variables but '
                     f'{len(variables) - 1} tensors'):
    networks.call_with_weights(model, weights[:-1], _obs())
  bad = list(weights)
  bad[1] = tf.zeros([7, 7], tf.float64)
  name = variables[1].name
  with pytest.raises(ValueError) as err:
    networks.call_with_weights(model, bad, _obs())
  message = str(err.value)
  assert name in message and '[7, 7]' in message
  assert str(variables[1].shape.as_list()) in message
  bad = list(weights)
  bad[0] = tf.cast(weights[0], tf.float32)
  with pytest.raises(ValueError, match='must have dtype float64, got float32'):
    networks.call_with_weights(model, bad, _obs())


def test_nested_scopes_override_and_restore():
  u = tf.Variable(1.0)
  v = tf.Variable(2.0)
  a, b, c = tf.constant(10.0), tf.constant(20.0), tf.constant(30.0)
  with params.substitute([u, v], [a, b]):
    with params.substitute([v], [c]):
      assert params.read(u) is a
      assert params.read(v) is c
    assert params.read(v) is b
  assert params.read(u) is u and params.read(v) is v
  with pytest.raises(RuntimeError):
    with params.substitute([u], [a]):
      raise RuntimeError('boom')
  assert params.read(u) is u


def test_unread_variables_raise():
  inputs = tf.keras.Input(shape=(3,), dtype='float64')
  hidden = networks.Linear(4, dtype='float64')(inputs)
  outputs = tf.keras.layers.Dense(2, dtype='float64')(hidden)
  model = tf.keras.Model(inputs, outputs)
  weights = [tf.identity(v) for v in model.trainable_variables]
  with pytest.raises(ValueError, match='did not read 2 of its 4'):
    networks.call_with_weights(model, weights, _obs())


def test_unbuilt_model_raises():
  with pytest.raises(ValueError, match='needs a built model'):
    networks.call_with_weights(networks.MLPTorso((3,)), [tf.zeros([3, 3])],
                               _obs())


@pytest.mark.parametrize('jit_compile', [False, True])
def test_inside_tf_function(jit_compile):
  model = _conv_lstm_net()
  x = _frames()
  weights = [v * 1.5 for v in model.trainable_variables]

  @tf.function(jit_compile=jit_compile, autograph=False)
  def outputs_and_grads(weights, x):
    with tf.GradientTape() as tape:
      tape.watch(weights)
      out = networks.call_with_weights(model, weights, x)
      loss = _scalar(out)
    return out, tape.gradient(loss, weights)

  out, grads = outputs_and_grads(weights, x)
  with tf.GradientTape() as tape:
    tape.watch(weights)
    expected = networks.call_with_weights(model, weights, x)
    loss = _scalar(expected)
  expected_grads = tape.gradient(loss, weights)
  np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-12)
  for g, e in zip(grads, expected_grads):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)
  # A different substitute fed to the same trace gives its own outputs.
  other = [w * 0.5 for w in weights]
  np.testing.assert_allclose(
      outputs_and_grads(other, x)[0].numpy(),
      networks.call_with_weights(model, other, x).numpy(), rtol=1e-12)


def test_maml_second_order_gradient_matches_fd(fd_seed):
  inputs = tf.keras.Input(shape=(2,), dtype='float64')
  hidden = networks.Linear(3, activation='tanh', dtype='float64')(inputs)
  outputs = networks.Linear(1, dtype='float64')(hidden)
  model = tf.keras.Model(inputs, outputs)
  helpers.randomize(model, seed=fd.shaken(4, fd_seed))
  rng = np.random.default_rng(fd.shaken(5, fd_seed))
  x_in, y_in = rng.normal(size=(6, 2)), rng.normal(size=(6, 1))
  x_out, y_out = rng.normal(size=(6, 2)), rng.normal(size=(6, 1))
  lr = 0.3

  def outer_loss(weights):
    with tf.GradientTape() as inner:
      inner.watch(weights)
      loss_in = tf.reduce_mean(
          (networks.call_with_weights(model, weights, x_in) - y_in)**2)
    grads = inner.gradient(loss_in, weights)
    adapted = [w - lr * g for w, g in zip(weights, grads)]
    return tf.reduce_mean(
        (networks.call_with_weights(model, adapted, x_out) - y_out)**2)

  weights = [tf.identity(v) for v in model.trainable_variables]
  with tf.GradientTape() as tape:
    tape.watch(weights)
    loss = outer_loss(weights)
  meta_grads = tape.gradient(loss, weights)
  # The second-order term matters: first-order MAML gives another answer.
  with tf.GradientTape() as inner:
    inner.watch(weights)
    loss_in = tf.reduce_mean(
        (networks.call_with_weights(model, weights, x_in) - y_in)**2)
  adapted = [tf.stop_gradient(w - lr * g)
             for w, g in zip(weights, inner.gradient(loss_in, weights))]
  with tf.GradientTape() as tape:
    tape.watch(adapted)
    loss = tf.reduce_mean(
        (networks.call_with_weights(model, adapted, x_out) - y_out)**2)
  first_order = tape.gradient(loss, adapted)
  gap = sum(np.sum((a - b)**2) for a, b in zip(meta_grads, first_order))
  assert gap > 1e-6
  fd.check_gradient_list(
      lambda arrays: float(outer_loss([tf.constant(a) for a in arrays])),
      [w.numpy() for w in weights], meta_grads, rng=rng)


def test_scopes_are_thread_local():
  v = tf.Variable(0.0)
  barrier = threading.Barrier(2)
  seen = {}

  def worker(key, value):
    with params.substitute([v], [tf.constant(value)]):
      barrier.wait()
      seen[key] = float(params.read(v))
      barrier.wait()
    seen[key + '_after'] = params.read(v) is v

  threads = [threading.Thread(target=worker, args=(k, x))
             for k, x in (('a', 1.0), ('b', 2.0))]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert seen == {'a': 1.0, 'b': 2.0, 'a_after': True, 'b_after': True}


def test_inside_mirrored_strategy_replica_fn():
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
  with strategy.scope():
    model = _agent()
  x = _obs()

  @tf.function(autograph=False)
  def replica_fn(x):
    weights = [2.0 * v for v in model.trainable_variables]
    return networks.call_with_weights(model, weights, x)

  got = strategy.run(replica_fn, args=(x,))
  copy = _agent()
  copy.set_weights([2.0 * w for w in model.get_weights()])
  for g, e in zip(tf.nest.flatten(got), tf.nest.flatten(copy(x))):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-12)
