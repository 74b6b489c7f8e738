"""Pure optimizers, schedules and clipping."""

import numpy as np
import pytest
import tensorflow as tf

from tests import finite_differences as fd
from tf_metagrad import optim

_SHAPES = [(3,), (2, 2), ()]


def _steps(seed=0, num_steps=4):
  rng = np.random.default_rng(seed)
  params = [rng.normal(size=s) for s in _SHAPES]
  grads = [[rng.normal(size=s) for s in _SHAPES] for _ in range(num_steps)]
  rates = [0.1, 0.05, 0.2, 0.01][:num_steps]
  return params, grads, rates


def np_sgd(params, grads, rates, momentum):
  traces = [np.zeros_like(p) for p in params]
  params = [p.copy() for p in params]
  for step_grads, lr in zip(grads, rates):
    for i, g in enumerate(step_grads):
      traces[i] = momentum * traces[i] + g
      params[i] = params[i] - lr * traces[i]
  return params


def np_rmsprop(params, grads, rates, decay, epsilon, momentum):
  mean_squares = [np.zeros_like(p) for p in params]
  traces = [np.zeros_like(p) for p in params]
  params = [p.copy() for p in params]
  for step_grads, lr in zip(grads, rates):
    for i, g in enumerate(step_grads):
      mean_squares[i] = decay * mean_squares[i] + (1 - decay) * g**2
      traces[i] = momentum * traces[i] + g / np.sqrt(mean_squares[i] + epsilon)
      params[i] = params[i] - lr * traces[i]
  return params


def np_adam(params, grads, rates, b1, b2, epsilon):
  mus = [np.zeros_like(p) for p in params]
  nus = [np.zeros_like(p) for p in params]
  params = [p.copy() for p in params]
  for k, (step_grads, lr) in enumerate(zip(grads, rates), start=1):
    for i, g in enumerate(step_grads):
      mus[i] = b1 * mus[i] + (1 - b1) * g
      nus[i] = b2 * nus[i] + (1 - b2) * g**2
      mu_hat = mus[i] / (1 - b1**k)
      nu_hat = nus[i] / (1 - b2**k)
      params[i] = params[i] - lr * mu_hat / (np.sqrt(nu_hat) + epsilon)
  return params


_CASES = [
    ('sgd', lambda: optim.SGD(),
     lambda p, g, r: np_sgd(p, g, r, 0.0)),
    ('sgd_momentum', lambda: optim.SGD(momentum=0.9),
     lambda p, g, r: np_sgd(p, g, r, 0.9)),
    ('rmsprop_stac', lambda: optim.RMSProp(decay=0.99, epsilon=0.1),
     lambda p, g, r: np_rmsprop(p, g, r, 0.99, 0.1, 0.0)),
    ('rmsprop_momentum', lambda: optim.RMSProp(0.9, 1e-3, momentum=0.5),
     lambda p, g, r: np_rmsprop(p, g, r, 0.9, 1e-3, 0.5)),
    ('adam', lambda: optim.Adam(),
     lambda p, g, r: np_adam(p, g, r, 0.9, 0.999, 1e-8)),
    ('adam_stac_meta', lambda: optim.Adam(b1=0.9, b2=0.999, epsilon=1e-4),
     lambda p, g, r: np_adam(p, g, r, 0.9, 0.999, 1e-4)),
]


@pytest.mark.parametrize('name,make,reference', _CASES)
def test_optimizer_matches_numpy_over_several_steps(name, make, reference):
  del name
  opt = make()
  params, grads, rates = _steps()
  theta = [tf.constant(p) for p in params]
  state = opt.init(theta)
  assert len(state) == len(theta)
  for step_grads, lr in zip(grads, rates):
    theta, state = opt.update([tf.constant(g) for g in step_grads], state,
                              theta, tf.constant(lr, tf.float64))
  for got, expected in zip(theta, reference(params, grads, rates)):
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_rmsprop_epsilon_inside_sqrt_with_zero_initial_mean_square():
  opt = optim.RMSProp(decay=0.99, epsilon=0.1)
  (new,), _ = opt.update([tf.constant(2.0, tf.float64)],
                         opt.init([tf.constant(0.0, tf.float64)]),
                         [tf.constant(0.0, tf.float64)], 1.0)
  # optax convention; TF1 (ms starts at 1) would give -2 / sqrt(1.04 + 0.1)
  # and Keras 2 (eps outside) -2 / (0.2 + 0.1).
  np.testing.assert_allclose(new.numpy(), -2.0 / np.sqrt(0.01 * 4 + 0.1),
                             rtol=1e-14)


def _flat_leaves(state):
  return [t for t in tf.nest.flatten(state) if t.dtype.is_floating]


def _rebuild_state(state, floats):
  """Replaces the float leaves of `state` by `floats`, in order."""
  floats = iter(floats)
  return tf.nest.map_structure(
      lambda t: next(floats) if t.dtype.is_floating else t, state)


@pytest.mark.parametrize('name,make,reference', _CASES)
@pytest.mark.parametrize('stop_statistics', [False, True])
def test_update_gradients_wrt_grads_and_state_match_fd(name, make, reference,
                                                       stop_statistics,
                                                       fd_seed):
  del reference
  opt = make()
  params, grads, rates = _steps(fd.shaken(1, fd_seed), num_steps=3)
  theta = [tf.constant(p) for p in params]
  state = opt.init(theta)
  # Move away from the zero initial state so every term is exercised.
  for step_grads, lr in zip(grads[:2], rates[:2]):
    theta, state = opt.update([tf.constant(g) for g in step_grads], state,
                              theta, lr)
  leaves = _flat_leaves(state)
  rng = np.random.default_rng(fd.shaken(2, fd_seed))
  weights_p = [rng.normal(size=s) for s in _SHAPES]
  weights_s = [rng.normal(size=l.shape) for l in leaves]
  n_grads = len(_SHAPES)

  def objective(arrays):
    g = [tf.constant(a) for a in arrays[:n_grads]]
    s = _rebuild_state(state, [tf.constant(a) for a in arrays[n_grads:]])
    new_theta, new_state = opt.update(g, s, theta, tf.constant(0.3, tf.float64),
                                      stop_statistics_gradient=stop_statistics)
    total = sum(tf.reduce_sum(w * p) for w, p in zip(weights_p, new_theta))
    for w, leaf in zip(weights_s, _flat_leaves(new_state)):
      total += tf.reduce_sum(w * leaf)
    return total

  point = [tf.constant(g) for g in grads[2]] + list(leaves)
  with tf.GradientTape() as tape:
    tape.watch(point)
    value = objective(point)
  analytic = tape.gradient(value, point,
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)
  if stop_statistics:
    _check_stopped_statistics(opt, analytic, n_grads, state)
    return
  # Adam's nu is ~1e-3 here, where 1/sqrt(nu) curves strongly: small steps.
  fd.check_gradient_list(lambda arrays: float(objective(arrays)),
                         [p.numpy() for p in point], analytic, step=1e-7,
                         rng=rng, label=name)


def _check_stopped_statistics(opt, analytic, n_grads, state):
  """With stopped statistics no derivative reaches the second moments."""
  if isinstance(opt, optim.RMSProp):
    stat_index = 0
  elif isinstance(opt, optim.Adam):
    stat_index = 1
  else:
    return
  per_param = len(_flat_leaves(state[0]))
  for i in range(len(state)):
    grad = analytic[n_grads + i * per_param + stat_index]
    np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_stop_statistics_gradient_keeps_values_and_numerator_derivative():
  opt = optim.RMSProp(decay=0.9, epsilon=0.1)
  g = tf.constant([0.5, -2.0], tf.float64)
  p = tf.constant([1.0, 1.0], tf.float64)
  state = [optim.RMSPropState(tf.constant([0.2, 0.3], tf.float64))]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(g)
    exact, _ = opt.update([g], state, [p], 0.5)
    stopped, _ = opt.update([g], state, [p], 0.5,
                            stop_statistics_gradient=True)
  np.testing.assert_array_equal(exact[0].numpy(), stopped[0].numpy())
  ms = 0.9 * np.array([0.2, 0.3]) + 0.1 * g.numpy()**2
  np.testing.assert_allclose(
      tape.gradient(stopped[0], g).numpy(), -0.5 / np.sqrt(ms + 0.1),
      rtol=1e-14)
  assert not np.allclose(tape.gradient(exact[0], g).numpy(),
                         -0.5 / np.sqrt(ms + 0.1))


def test_adam_eps_root_sits_inside_the_square_root():
  opt = optim.Adam(b1=0.5, b2=0.75, epsilon=1e-3, eps_root=0.04)
  g = tf.constant([0.3, -0.1], tf.float64)
  p = tf.constant([1.0, 2.0], tf.float64)
  new, state = opt.update([g], opt.init([p]), [p], 0.1)
  mu_hat = (0.5 * g.numpy()) / 0.5
  nu_hat = (0.25 * g.numpy()**2) / 0.25
  np.testing.assert_allclose(
      new[0].numpy(), p.numpy() - 0.1 * mu_hat / (np.sqrt(nu_hat + 0.04)
                                                  + 1e-3), rtol=1e-14)
  assert int(state[0].count) == 1


def test_none_gradients_leave_param_and_state_alone():
  opt = optim.Adam()
  params = [tf.constant([1.0, 2.0]), tf.constant(3.0)]
  state = opt.init(params)
  new_params, new_state = opt.update([tf.constant([1.0, 1.0]), None], state,
                                     params, 0.1)
  assert new_params[1] is params[1] and new_state[1] is state[1]
  assert int(new_state[0].count) == 1 and int(new_state[1].count) == 0


def test_update_validates_lengths_and_shapes():
  opt = optim.SGD()
  params = [tf.zeros([2]), tf.zeros([3])]
  with pytest.raises(ValueError, match='2 grads, 2 states and 1 params'):
    opt.update([tf.zeros([2]), tf.zeros([3])], opt.init(params), params[:1],
               0.1)
  with pytest.raises(ValueError, match=r'grads\[1\] has shape \(4,\)'):
    opt.update([tf.zeros([2]), tf.zeros([4])], opt.init(params), params, 0.1)
  with pytest.raises(ValueError, match='decay must be in'):
    optim.RMSProp(decay=1.0)


def test_linear_schedule_stac_values():
  assert float(optim.linear_schedule(0, 6e-4, 0.0, 1000)) == pytest.approx(
      6e-4)
  assert float(optim.linear_schedule(250, 6e-4, 0.0, 1000)) == pytest.approx(
      4.5e-4)
  assert float(optim.linear_schedule(tf.constant(500, tf.int64), 1e-3, 1e-4,
                                     1000)) == pytest.approx(5.5e-4)
  assert float(optim.linear_schedule(5000, 1e-3, 1e-4, 1000)) == pytest.approx(
      1e-4)
  with pytest.raises(ValueError, match='total_steps must be > 0'):
    optim.linear_schedule(0, 1.0, 0.0, 0)


def test_clip_by_global_norm_values_and_gradients(fd_seed):
  rng = np.random.default_rng(fd.shaken(4, fd_seed))
  arrays = [rng.normal(size=(3,)), rng.normal(size=(2, 2))]
  norm = np.sqrt(sum(np.sum(a**2) for a in arrays))
  clipped, got_norm = optim.clip_by_global_norm(
      [tf.constant(a) for a in arrays] + [None], 0.5)
  assert clipped[-1] is None
  np.testing.assert_allclose(got_norm.numpy(), norm, rtol=1e-14)
  for c, a in zip(clipped, arrays):
    np.testing.assert_allclose(c.numpy(), a * 0.5 / norm, rtol=1e-14)
  unclipped, _ = optim.clip_by_global_norm([tf.constant(a) for a in arrays],
                                           10.0)
  for c, a in zip(unclipped, arrays):
    np.testing.assert_array_equal(c.numpy(), a)
  weights = [rng.normal(size=a.shape) for a in arrays]

  def objective(values):
    out, _ = optim.clip_by_global_norm([tf.constant(v) for v in values], 0.5)
    return sum(tf.reduce_sum(w * o) for w, o in zip(weights, out))

  tensors = [tf.constant(a) for a in arrays]
  with tf.GradientTape() as tape:
    tape.watch(tensors)
    value = objective(tensors)
  analytic = tape.gradient(value, tensors)
  fd.check_gradient_list(lambda values: float(objective(values)), arrays,
                         analytic, rng=rng)
  zeros = [tf.zeros([2], tf.float64)]
  with tf.GradientTape() as tape:
    tape.watch(zeros)
    out, norm = optim.clip_by_global_norm(zeros, 1.0)
    total = tf.reduce_sum(out[0]) + norm
  assert np.all(np.isfinite(tape.gradient(total, zeros)[0].numpy()))
