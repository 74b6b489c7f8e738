"""The meta-gradient engine against float64 central finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import optim
from tf_metagrad.meta import engine as engine_lib
from tests import finite_differences as fd
from tests.meta import problems

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(),
    "rmsprop": lambda: optim.RMSProp(decay=0.9, epsilon=0.1),
    "adam": lambda: optim.Adam(b1=0.9, b2=0.999, epsilon=1e-4),
}


def _setup(num_steps, opt_name, exact=True, max_grad_norm=None, seed=0):
  model = problems.make_model(seed)
  optimizer = OPTIMIZERS[opt_name]()
  engine = engine_lib.MetaGradientEngine(
      optimizer, num_inner_steps=num_steps,
      differentiate_optimizer_state=exact, max_grad_norm=max_grad_norm)
  params = [tf.convert_to_tensor(v) for v in model.trainable_variables]
  # A non-zero starting state, as after earlier updates.
  state = optimizer.init(params)
  warm_grads = [0.3 * tf.ones_like(p) for p in params]
  _, state = optimizer.update(warm_grads, state, params, 0.0)
  inner_batches = problems.make_batches(num_steps, seed=seed + 1)
  outer = problems.make_batches(1, seed=seed + 2)[0]
  inner_fn, outer_fn = problems.losses(model)
  batches = inner_batches if num_steps > 1 else inner_batches[0]
  return engine, inner_fn, outer_fn, params, state, batches, outer


def _metagradient(engine, inner_fn, outer_fn, params, state, batches, outer,
                  meta, lr=0.05):
  return engine.metagradient(inner_fn, outer_fn, params, state, meta,
                             batches, outer, lr)


def _check(setup, rng, label):
  """FD check of every metaparameter entry (tests/finite_differences.py)."""
  engine, inner_fn, outer_fn, params, state, batches, outer = setup
  meta = problems.make_meta()
  result = _metagradient(*setup, meta)

  def loss(point):
    return float(engine.outer_loss_at(
        inner_fn, outer_fn, params, state,
        {k: tf.constant(v) for k, v in point.items()}, meta, batches, outer,
        0.05))

  return result, fd.check_gradient(
      loss, {k: v.numpy() for k, v in meta.items()},
      {k: v.numpy() for k, v in result.meta_grads.items()}, rng=rng,
      label=label)


@pytest.mark.parametrize("num_steps", [1, 3])
@pytest.mark.parametrize("opt_name", ["sgd", "rmsprop", "adam"])
def test_exact_metagradient_matches_finite_differences(num_steps, opt_name,
                                                       fd_seed):
  seed = fd.shaken(0, fd_seed)
  result, _ = _check(_setup(num_steps, opt_name, seed=seed),
                     np.random.default_rng(seed), f"{opt_name} M={num_steps}")
  for name, grad in result.meta_grads.items():
    assert np.all(np.abs(grad.numpy()) > 1e-6), f"{name} has no meta-gradient"


def test_clipped_inner_update_is_differentiated_exactly(fd_seed):
  seed = fd.shaken(0, fd_seed)
  setup = _setup(2, "rmsprop", max_grad_norm=0.5, seed=seed)
  result, _ = _check(setup, np.random.default_rng(seed), "clipped")
  # Clipping is active, by a margin no finite-difference step crosses.
  assert float(result.inner.grad_norms[0]) > 0.6


@pytest.mark.parametrize("opt_name", ["rmsprop", "adam"])
def test_finite_differences_reject_the_constant_statistics_metagradient(
    opt_name, fd_seed):
  """The check catches a meta-gradient that drops the optimizer-statistics
  term: the same outer loss, differentiated without it, must fail."""
  seed = fd.shaken(0, fd_seed)
  with pytest.raises(AssertionError, match="disagree"):
    _check(_setup(3, opt_name, exact=False, seed=seed),
           np.random.default_rng(seed), f"{opt_name} constant statistics")


@pytest.mark.parametrize("num_steps", [1, 3])
def test_constant_statistics_mode_equals_exact_for_sgd(num_steps):
  exact = _metagradient(*_setup(num_steps, "sgd", exact=True),
                        problems.make_meta())
  approx = _metagradient(*_setup(num_steps, "sgd", exact=False),
                         problems.make_meta())
  for name in exact.meta_grads:
    np.testing.assert_allclose(approx.meta_grads[name].numpy(),
                               exact.meta_grads[name].numpy(), rtol=1e-12)


@pytest.mark.parametrize("opt_name", ["rmsprop", "adam"])
def test_constant_statistics_mode_is_an_approximation(opt_name):
  """Same inner update values, different meta-gradient.

  How large the difference is depends on the problem (on this one it is of
  the order of the meta-gradient itself); `benchmarks/metagrad_approximation`
  prints it for the STAC learner on real Catch data.
  """
  exact = _metagradient(*_setup(3, opt_name, exact=True),
                        problems.make_meta())
  approx = _metagradient(*_setup(3, opt_name, exact=False),
                         problems.make_meta())
  for p_exact, p_approx in zip(exact.inner.params, approx.inner.params):
    np.testing.assert_allclose(p_approx.numpy(), p_exact.numpy(), rtol=1e-12)
  flat_exact = np.concatenate(
      [np.reshape(g, -1) for g in tf.nest.flatten(exact.meta_grads)])
  flat_approx = np.concatenate(
      [np.reshape(g, -1) for g in tf.nest.flatten(approx.meta_grads)])
  rel = np.linalg.norm(flat_approx - flat_exact) / np.linalg.norm(flat_exact)
  assert np.isfinite(rel) and rel > 1e-6, rel


def test_inner_batches_must_match_num_inner_steps():
  engine, inner_fn, outer_fn, params, state, batches, outer = _setup(3, "sgd")
  with pytest.raises(ValueError, match="list of 3 trajectories"):
    engine.metagradient(inner_fn, outer_fn, params, state,
                        problems.make_meta(), batches[:2], outer, 0.05)
  with pytest.raises(ValueError, match="num_inner_steps must be >= 1"):
    engine_lib.MetaGradientEngine(optim.SGD(), num_inner_steps=0)


def test_metagradient_under_jit_compile_matches_eager():
  engine, inner_fn, outer_fn, params, state, batches, outer = _setup(
      2, "rmsprop")
  meta = problems.make_meta()
  eager = _metagradient(engine, inner_fn, outer_fn, params, state, batches,
                        outer, meta)

  @tf.function(jit_compile=True, autograph=False)
  def compiled(meta):
    return _metagradient(engine, inner_fn, outer_fn, params, state, batches,
                         outer, meta).meta_grads

  jitted = compiled(meta)
  for name in meta:
    np.testing.assert_allclose(jitted[name].numpy(),
                               eager.meta_grads[name].numpy(), rtol=1e-9)
