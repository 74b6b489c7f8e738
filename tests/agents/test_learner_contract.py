"""Learner contract: ablations freeze what they say, non-finite updates are
skipped, XLA gives the same step, bad configs are clear errors."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests.agents import helpers

TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float64",
            learning_rate=0.01)


def _batch(seed=0, **kwargs):
  return helpers.random_trajectory(np.random.default_rng(seed), 4, 3,
                                   **kwargs)


def _make(agent, **overrides):
  spec, space = helpers.spaces()
  return agents.make_learner(agent, spec, space, **dict(TINY, **overrides))


def _params(learner):
  return [v.numpy() for v in learner.network.trainable_variables]


def test_stac_without_metaparameters_is_impala():
  stac = _make("stac", meta_learned=())
  impala = _make("impala")
  assert stac.meta_params() == {}
  for step in range(3):
    stac.step(_batch(step))
    impala.step(_batch(step))
  for a, b in zip(_params(stac), _params(impala)):
    np.testing.assert_array_equal(a, b)


def test_frozen_metaparameters_keep_their_outer_values():
  learner = _make("stac", meta_learned=("gamma",))
  assert set(learner.meta_params()) == {"gamma"}
  impala = _make("impala")
  # With sigmoid(logit) = the outer gamma, the inner loss is IMPALA's exactly:
  # every frozen hyperparameter sits at its outer value.
  learner._meta_variables()["gamma"].assign(np.log(0.995 / 0.005))
  batch = _batch()
  params = [tf.convert_to_tensor(v) for v in learner.network.trainable_variables]
  stac_loss, _ = learner._inner_loss(params, learner._meta_variables(), batch,
                                     None)
  impala_loss, _ = impala._inner_loss(params, {}, batch, None)
  np.testing.assert_allclose(stac_loss.numpy(), impala_loss.numpy(),
                             rtol=1e-12)
  metrics = learner.step(batch)
  assert "meta/gamma" in metrics and "meta/alpha" not in metrics


@pytest.mark.parametrize("variant,keys", [
    ("qr", set()),
    ("eta1", {"g_v", "g_p", "g_e"}),
    ("full", {"gamma", "lambda_", "alpha", "g_v", "g_p", "g_e"}),
])
def test_drmg_variants_meta_learn_exactly_their_sets(variant, keys):
  # One update per step: the sets do not depend on the batch scheme, and
  # the default's two updates would trace the step twice.
  learner = _make("drmg", variant=variant, num_quantiles=4,
                  outer_batch="same")
  assert set(learner.meta_params()) == keys
  before = {k: v.numpy() for k, v in learner.meta_params().items()}
  metrics = learner.step(_batch())
  for name in keys:
    assert not np.array_equal(before[name], learner.meta_params()[name])
  if variant == "full":
    assert learner.meta_params()["gamma"].shape == (4,)
    assert {"meta/gamma/mean", "meta/gamma/min", "meta/gamma/max",
            "meta/alpha"} <= set(metrics)


def test_drmg_eta1_keeps_gamma_lambda_alpha_fixed():
  learner = _make("drmg", variant="eta1", num_quantiles=4)
  hparams = learner._hparams(learner._transform(learner._meta_variables(), 0))
  assert hparams.gamma == learner.config.gamma
  assert hparams.lambda_ == learner.config.lambda_
  assert hparams.alpha_rho == hparams.alpha_c == learner.config.alpha


def test_non_finite_loss_skips_the_update():
  learner = _make("stac")
  before = [v.numpy() for v in learner.variables
            if v is not learner.skipped_updates
            and v is not learner.learner_steps]
  bad = _batch()._replace(reward=tf.constant(
      np.full((4, 3), np.nan), tf.float64))
  metrics = learner.step(bad)
  assert float(metrics["skipped_updates"]) == 1
  after = [v.numpy() for v in learner.variables
           if v is not learner.skipped_updates
           and v is not learner.learner_steps]
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
  metrics = learner.step(_batch())
  assert float(metrics["skipped_updates"]) == 1
  assert all(np.all(np.isfinite(v.numpy())) for v in learner.variables)


def test_bad_names_and_values_are_clear_errors():
  spec, space = helpers.spaces()
  with pytest.raises(ValueError, match=r"Unknown agent 'stacks'; allowed: "
                     r"\['drmg', 'frodo', 'impala', 'mgrl', 'stac', 'stacx'\]"):
    agents.make_learner("stacks", spec, space)
  with pytest.raises(ValueError, match="Unknown config field.*'gamma_outer'"):
    agents.make_learner("stac", spec, space, gamma_outer=0.9)
  with pytest.raises(ValueError, match="gamma must be in \\[0, 1\\]"):
    agents.make_learner("impala", spec, space, gamma=1.5)
  with pytest.raises(ValueError, match="meta_learned has unknown names"):
    agents.make_learner("stac", spec, space, meta_learned=("gama",))
  with pytest.raises(ValueError, match="variant must be one of"):
    agents.make_learner("drmg", spec, space, variant="full2")
  with pytest.raises(TypeError, match="action_space must be"):
    agents.make_learner("stac", spec, object())


@pytest.mark.parametrize("agent,overrides,error,message", [
    ("stac", {"num_quantiles": 2.5}, TypeError,
     r"num_quantiles must be an int, got 2.5 \(float\)"),
    ("stacx", {"num_heads": 2.5}, TypeError,
     r"num_heads must be an int, got 2.5 \(float\)"),
    ("frodo", {"num_inner_steps": True}, TypeError,
     r"num_inner_steps must be an int, got True \(bool\)"),
    ("stac", {"meta_b1": 1.0}, ValueError,
     r"meta_b1 must be in \[0, 1\), got 1.0"),
    ("stac", {"meta_b2": 1.0}, ValueError,
     r"meta_b2 must be in \[0, 1\), got 1.0"),
    ("stac", {"meta_b1": -0.1}, ValueError,
     r"meta_b1 must be in \[0, 1\), got -0.1"),
    ("frodo", {"outer_batch": "split"}, ValueError,
     r"outer_batch must be 'same', got 'split'"),
    ("frodo", {"meta_direction": "reverse"}, ValueError,
     r"meta_direction must be one of \('forward', 'backward'\), got "
     r"'reverse'"),
    ("frodo", {"use_observation": 1}, TypeError,
     r"use_observation must be a bool, got 1 \(int\)"),
    ("drmg", {"outer_batch": "halves"}, ValueError,
     r"outer_batch must be 'same' or 'split', got 'halves'"),
    ("impala", {"mlp_hidden_sizes": 5}, TypeError,
     r"mlp_hidden_sizes must be a tuple of int values, got 5 \(int\)"),
    ("impala", {"mlp_hidden_sizes": (8, 2.5)}, TypeError,
     r"mlp_hidden_sizes\[1\] must be an int, got 2.5"),
    ("impala", {"gamma": "0.9"}, TypeError,
     r"gamma must be a float, got '0.9' \(str\)"),
    ("stac", {"meta_learned": "gamma"}, TypeError,
     r"meta_learned must be a tuple of str values, got 'gamma'"),
    ("stac", {"jit_compile": "yes"}, ValueError,
     r"jit_compile must be True, False or 'auto', got 'yes'"),
    ("stac", {"jit_compile": 1}, ValueError,
     r"jit_compile must be True, False or 'auto', got 1"),
    ("stac", {"end_learning_rate": 1e-4}, ValueError,
     r"end_learning_rate=0.0001 differs from learning_rate=0.0006 but "
     r"decay_steps=0"),
    ("stac", {"decay_steps": 100}, ValueError,
     r"decay_steps=100 needs end_learning_rate"),
    ("frodo", {"pseudo_label_normalize": "loss"}, ValueError,
     r"pseudo_label_normalize must be one of \('none', 'outer', 'value'\)"),
    ("stac", {"meta_optimizer": "sgd"}, ValueError,
     r"meta_optimizer must be one of \('adam', 'rmsprop'\), got 'sgd'"),
    ("frodo", {"meta_use_bias": 0}, TypeError,
     r"meta_use_bias must be a bool, got 0 \(int\)"),
])
def test_bad_types_and_values_name_the_field(agent, overrides, error,
                                             message):
  with pytest.raises(error, match=message):
    agents.make_config(agent, **overrides)


def test_good_values_are_normalised_to_the_field_types():
  config = agents.make_config("stac", mlp_hidden_sizes=[4, np.int64(5)],
                              gamma=1, meta_learned=["gamma"],
                              meta_b1=0.0, learning_rate=np.float32(0.5))
  assert config.mlp_hidden_sizes == (4, 5)
  assert isinstance(config.mlp_hidden_sizes[1], int)
  assert config.gamma == 1.0 and isinstance(config.gamma, float)
  assert config.meta_learned == ("gamma",)
  assert config.learning_rate == 0.5 and type(config.learning_rate) is float


def test_split_batch_without_metaparameters_trains_on_all_of_it():
  # No metaparameters means no outer loss, so "split" must not drop half of
  # the batch from the only update there is.
  split = _make("stac", meta_learned=(), outer_batch="split")
  same = _make("stac", meta_learned=())
  for a, b in zip(split.variables, same.variables):
    b.assign(a)
  split.step(_batch())
  same.step(_batch())
  for a, b in zip(_params(split), _params(same)):
    np.testing.assert_array_equal(a, b)


def _state(learner):
  """Every variable a step may change."""
  return [v.numpy() for v in (
      list(learner.network.variables) + tf.nest.flatten(learner.opt_state)
      + tf.nest.flatten(learner._meta_variables())
      + tf.nest.flatten(learner.meta_opt_state)
      + [learner.learner_steps, learner.skipped_updates])]


# Drawing the batch is the base class's code, the same for every agent; what
# differs is the step it calls: IMPALA's first-order one, STAC's meta-step
# (standing for MGRL and STACX, which share its `_update`), DrMG's two
# updates per batch and FRODO's M + 1 trajectories per item. Every agent
# draws its batches in the graph in tests/training/test_train_smoke.py
# (`steps_from_iterator`, the same drawing in a loop).
@pytest.mark.parametrize("agent", ["drmg", "frodo", "impala", "stac"])
def test_step_from_iterator_is_step_on_the_next_element(agent):
  overrides = {"frodo": {"num_inner_steps": 1}}.get(agent, {})
  direct, drawn = _make(agent, **overrides), _make(agent, **overrides)
  for a, b in zip(direct.network.variables, drawn.network.variables):
    b.assign(a)
  batches = [_batch(seed) for seed in range(2)]
  extras = [{"episode_return": tf.fill([4, 3], float(seed))}
            for seed in range(2)]
  dataset = tf.data.Dataset.from_tensor_slices(
      (tf.nest.map_structure(lambda *x: tf.stack(x), *batches),
       tf.nest.map_structure(lambda *x: tf.stack(x), *extras)))
  iterator = iter(dataset)
  for batch, extra in zip(batches, extras):
    expected = direct.step(batch)
    metrics, passed = drawn.step_from_iterator(iterator)
    assert set(metrics) == set(expected)
    for k in expected:
      np.testing.assert_array_equal(metrics[k].numpy(), expected[k].numpy(),
                                    err_msg=k)
    np.testing.assert_array_equal(passed["episode_return"].numpy(),
                                  extra["episode_return"].numpy())
  for a, b in zip(direct.network.variables, drawn.network.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Two updates per batch for DrMG (Yin et al. (2023) section 5.2's swapped halves).
  steps = 2 * drawn.updates_per_batch
  assert drawn.updates_per_batch == (2 if agent == "drmg" else 1)
  assert int(drawn.learner_steps.numpy()) == steps
  # An exhausted iterator raises and changes nothing.
  before = _state(drawn)
  with pytest.raises(tf.errors.OutOfRangeError):
    drawn.step_from_iterator(iterator)
  after = _state(drawn)
  assert len(after) == len(before)
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)
  assert int(drawn.learner_steps.numpy()) == steps


def test_step_calls_one_trace_per_batch_signature_as_the_tf_function_would(
    tmp_path):
  # `step` calls the traced step's concrete function directly (less host
  # time per call); it must update exactly as calling the tf.function does.
  fast, plain = _make("impala"), _make("impala")
  for a, b in zip(fast.variables, plain.variables):
    b.assign(a)
  batches = [_batch(0), _batch(1),
             helpers.random_trajectory(np.random.default_rng(2), 6, 3)]
  for batch in batches:
    expected = plain._step_fn(batch)  # pylint: disable=protected-access
    metrics = fast.step(batch, check=False)
    assert set(metrics) == set(expected)
    for k in expected:
      np.testing.assert_array_equal(metrics[k].numpy(), expected[k].numpy(),
                                    err_msg=k)
  for a, b in zip(fast.variables, plain.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # pylint: disable=protected-access
  # T = 4 twice, then T = 6: two traces, two concrete functions kept.
  assert fast._step_fn.experimental_get_tracing_count() == 2
  assert len(fast._traced_steps) == 2
  # A nest of numpy arrays is not all eager tensors: the tf.function path.
  as_numpy = tf.nest.map_structure(lambda t: t.numpy(), batches[0])
  assert fast._traced_step(as_numpy) is fast._step_fn
  # The kept functions stay out of checkpoints (a dict attribute of a
  # tf.Module would be tracked and fail to save its tuple keys).
  iterator = iter(tf.data.Dataset.from_tensors(
      (batches[0], {"episode_return": tf.zeros([3])})).repeat())
  fast.steps_from_iterator(iterator, 2)
  # Counters of either integer dtype: one kept function each.
  for dtype in (tf.int64, tf.int32):
    counter = tf.Variable(0, dtype=dtype)
    fast.steps_from_iterator(iterator, 2, env_steps=counter,
                             frames_per_step=12)
    assert int(counter.numpy()) == 24
  assert len(fast._traced_iterator_steps) == 3
  path = tf.train.Checkpoint(learner=fast).save(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(learner=plain).restore(path).assert_consumed()
  for a, b in zip(fast.variables, plain.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("meta_optimizer", ["adam", "rmsprop"])
def test_meta_optimizer_option_picks_the_update_of_eta(meta_optimizer):
  # Qiu (2021) section 5.2 steps its meta-network with RMSprop; eta must move
  # by that rule (mean square of the meta-gradient carried across steps),
  # and by Adam's with the default.
  decay, eps, lr = 0.9, 1e-6, 0.05
  learner = _make("stac", meta_learned=("gamma", "g_v"),
                  meta_optimizer=meta_optimizer, meta_b2=decay,
                  meta_epsilon=eps, meta_learning_rate=lr)
  square = mu = 0.0
  for step in range(2):
    batch = _batch(step)
    names = sorted(learner._meta_variables())
    eta = np.array([learner._meta_variables()[k].numpy() for k in names])
    grads = learner._metagradient(learner._meta_variables(), batch,
                                  batch).meta_grads
    g = np.array([grads[k].numpy() for k in names])
    learner.step(batch)
    new = np.array([learner._meta_variables()[k].numpy() for k in names])
    square = decay * square + (1 - decay) * g ** 2
    if meta_optimizer == "rmsprop":
      expected = eta - lr * g / np.sqrt(square + eps)
    else:
      mu = 0.9 * mu + 0.1 * g
      expected = eta - lr * (mu / (1 - 0.9 ** (step + 1))) / (
          np.sqrt(square / (1 - decay ** (step + 1))) + eps)
    # Same float64 kernels on both sides except the few scalar operations
    # above: a few ulps of |eta| + lr.
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-13)
    assert np.all(np.abs(new - eta) > 1e-3 * lr)
