"""Every Keras-serializable class of tf_metagrad round-trips by its name.

`tf.keras.layers.serialize` records each layer under the name given by
`register_keras_serializable(package='tf_metagrad')`; the test drops the
Python module from the serialized dict, so `deserialize` has to find the
class through that registered name, then checks that the rebuilt layer, given
the original's weights, computes exactly the same outputs.

Every class also gives its weights names unique within the layer (H5 files
store weights by name) and round-trips through an H5 weights file.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.networks import helpers
from tf_metagrad import networks
from tf_metagrad.agents import networks as agent_networks

DTYPE = 'float64'
T, B = 4, 2


def _normal(shape, seed):
  return tf.constant(np.random.default_rng(seed).normal(size=shape), DTYPE)


def _pixels(shape, seed):
  return tf.constant(np.random.default_rng(seed).integers(
      0, 256, size=shape).astype(np.uint8))


def _single_input(shape, make_inputs=_normal):
  """(build shape, call) for a layer called on one `[..., F]` input."""
  return (None,) + shape[1:], lambda layer: layer(make_inputs(shape, 1))


def _lstm_cell_case():
  def call(layer):
    state = networks.LSTMState(_normal((B, 3), 2), _normal((B, 3), 3))
    return layer(_normal((B, 2), 1), state)
  return (None, 2), call


def _frodo_case():
  def call(layer):
    return layer(_normal((T, B), 1), _normal((T, B), 2), _normal((T, B), 3),
                 _normal((T, B, 2), 4))
  return (None, None), call


def _meta_parameters_case():
  return None, lambda layer: layer(None)


def _recurrent_agent_case():
  def call(layer):
    reset = tf.constant(np.random.default_rng(2).uniform(size=(T, B)) < 0.3)
    return layer(_normal((T, B, 5), 1), gamma=0.8, reset=reset)
  return (None, None, 5), call


# name registered under 'tf_metagrad>' -> (factory, (build shape, call)).
_CASES = {
    'Linear': (lambda: networks.Linear(3, activation='tanh', dtype=DTYPE),
               _single_input((B, 4))),
    'Conv2D': (lambda: networks.Conv2D(3, 3, strides=2, padding='valid',
                                       activation='relu', dtype=DTYPE),
               _single_input((B, 5, 5, 2))),
    'LSTMCell': (lambda: networks.LSTMCell(3, forget_bias=0.5, dtype=DTYPE),
                 _lstm_cell_case()),
    'StaticLSTM': (lambda: networks.StaticLSTM(3, reverse=True, dtype=DTYPE),
                   ((None, None, 2),
                    lambda layer: layer(_normal((T, B, 2), 1)))),
    'MLP': (lambda: networks.MLP((4, 3), activate_final=True, dtype=DTYPE),
            _single_input((B, 2))),
    'MLPTorso': (lambda: networks.MLPTorso((4, 3), dtype=DTYPE),
                 _single_input((B, 5))),
    'AtariResNetTorso': (
        lambda: networks.AtariResNetTorso((2, 3), blocks_per_section=1,
                                          output_size=4, dtype=DTYPE),
        _single_input((B, 9, 9, 4), _pixels)),
    'ConvTorso': (
        lambda: networks.ConvTorso((2,), blocks_per_section=2, output_size=4,
                                   dtype=DTYPE),
        _single_input((B, 9, 9, 3), _pixels)),
    'RecurrentCore': (lambda: networks.RecurrentCore(3, dtype=DTYPE),
                      ((None, None, 2),
                       lambda layer: layer(_normal((T, B, 2), 1)))),
    'PolicyValueHead': (lambda: networks.PolicyValueHead(3, (6,),
                                                         dtype=DTYPE),
                        _single_input((B, 5))),
    'SquashedGaussianPolicyHead': (
        lambda: networks.SquashedGaussianPolicyHead(2, (6,), -3.0, 0.5,
                                                    dtype=DTYPE),
        _single_input((B, 5))),
    'GaussianPolicyValueHead': (
        lambda: networks.GaussianPolicyValueHead(2, (6,), -5.0, 2.0,
                                                 dtype=DTYPE),
        _single_input((B, 5))),
    'QuantileValueHead': (lambda: networks.QuantileValueHead(5, (6,),
                                                             dtype=DTYPE),
                          _single_input((B, 5))),
    'PolicyQuantileHead': (lambda: networks.PolicyQuantileHead(4, 5, (6,),
                                                               dtype=DTYPE),
                           _single_input((B, 5))),
    'MultiHead': (lambda: networks.MultiHead(
        networks.PolicyValueHead(3, (6,)), num_heads=2, dtype=DTYPE),
                  _single_input((B, 5))),
    'MetaParameters': (lambda: networks.MetaParameters(
        {'gamma': networks.MetaParamSpec(),
         'g_v': networks.MetaParamSpec(shape=(3,), init_logit=1.0,
                                       outer_value=[0.5, 1.0, 2.0])},
        dtype=DTYPE), _meta_parameters_case()),
    'FrodoTargetNetwork': (lambda: networks.FrodoTargetNetwork(
        units=3, output_size=2, use_observation_embedding=True,
        embedding_size=2, reverse=True, dtype=DTYPE), _frodo_case()),
    'GaussianQuantileHead': (lambda: agent_networks.GaussianQuantileHead(
        2, 3, (6,), dtype=DTYPE), _single_input((B, 5))),
    'AgentNetwork': (lambda: agent_networks.AgentNetwork(
        (5,), 'float64', num_actions=3, num_heads=2, num_quantiles=4,
        mlp_hidden_sizes=(6,), head_hidden_sizes=(6,),
        gamma_embedding_size=2, reference_gamma=0.9, core_units=3,
        dtype=DTYPE), _recurrent_agent_case()),
}


def test_every_registered_class_is_covered():
  registered = {name.split('>', 1)[1]
                for name in tf.keras.utils.get_custom_objects()
                if name.startswith('tf_metagrad>')}
  assert registered == set(_CASES)


def _build(layer, shape):
  if shape is not None:
    layer.build(shape)


@pytest.mark.parametrize('name', sorted(_CASES))
def test_serialize_deserialize_round_trip(name):
  make, (shape, call) = _CASES[name]
  layer = make()
  _build(layer, shape)
  helpers.randomize(layer, seed=7)
  expected = tf.nest.flatten(call(layer))

  serialized = tf.keras.layers.serialize(layer)
  assert serialized['registered_name'] == f'tf_metagrad>{name}'
  del serialized['module']  # resolve through the registered name alone
  rebuilt = tf.keras.layers.deserialize(serialized)
  assert type(rebuilt) is type(layer)
  assert rebuilt.get_config() == layer.get_config()
  _build(rebuilt, shape)
  assert ([w.shape for w in rebuilt.weights]
          == [w.shape for w in layer.weights])
  # Fresh initial weights differ from the randomized ones ...
  assert any(not np.array_equal(a.numpy(), b.numpy())
             for a, b in zip(rebuilt.weights, layer.weights))
  rebuilt.set_weights(layer.get_weights())
  got = tf.nest.flatten(call(rebuilt))
  # ... so equal outputs mean the rebuilt layer computes the same function.
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    assert g.dtype == e.dtype == DTYPE
    np.testing.assert_array_equal(g.numpy(), e.numpy())


class _Holder(tf.keras.Model):
  """A model around one built layer: Keras writes H5 weights of models."""

  def __init__(self, layer):
    super().__init__()
    self.layer = layer
    # The layer's calls differ from case to case; its weights exist already.
    self.built = True


@pytest.mark.parametrize('name', sorted(_CASES))
def test_weight_names_are_unique_and_h5_round_trips(name, tmp_path):
  make, (shape, call) = _CASES[name]
  layer = make()
  _build(layer, shape)
  names = [w.name for w in layer.weights]
  assert len(set(names)) == len(names), names
  helpers.randomize(layer, seed=5)
  expected = tf.nest.flatten(call(layer))
  path = str(tmp_path / 'weights.h5')
  _Holder(layer).save_weights(path)
  rebuilt = make()
  _build(rebuilt, shape)
  _Holder(rebuilt).load_weights(path)
  got = tf.nest.flatten(call(rebuilt))
  for g, e in zip(got, expected):
    np.testing.assert_array_equal(g.numpy(), e.numpy())
