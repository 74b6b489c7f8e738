"""FRODO's meta-network, and the names of its weights.

FRODO's agent network is the shared actor-critic one
(`agents.networks.make_network`); what is FRODO's own is the meta-network
G_eta(tau), the LSTM of Qiu (2021) sections 4.1 and 5.2
(`networks.meta_networks.FrodoTargetNetwork`), sized, fed and run in the
direction the config says.
"""

from typing import Any, Dict

import tensorflow as tf

from tf_metagrad.agents import networks as agent_networks
from tf_metagrad.agents.frodo import config as frodo_config
from tf_metagrad.networks import meta_networks


def make_meta_network(
    config: frodo_config.FrodoConfig,
    network: agent_networks.AgentNetwork) -> meta_networks.FrodoTargetNetwork:
  """The built meta-network G_eta for `config` and the agent `network`.

  Args:
    config: a `FrodoConfig`; `meta_units` LSTM units (with a bias iff
      `meta_use_bias`) run in `meta_direction`, one output per step, or
      `num_quantiles` outputs with a distributional value head.
    network: the agent network, whose observation size the meta-network
      reads when `config.use_observation`.

  Returns:
    The built `FrodoTargetNetwork` (create it under the strategy scope).
  """
  obs_size = None
  if config.use_observation:
    obs_size = int(tf.TensorShape(network.observation_shape).num_elements())
  meta_network = meta_networks.FrodoTargetNetwork(
      units=config.meta_units,
      output_size=config.num_quantiles if config.distributional else 1,
      use_observation_embedding=config.use_observation,
      embedding_size=obs_size, reverse=config.meta_direction == "backward",
      use_bias=config.meta_use_bias,
      dtype=config.dtype,
      name="frodo_target_network")
  meta_network.build([None, None])
  return meta_network


def _weight_name(weight) -> str:
  return weight.name.split(":")[0].rsplit("/", 1)[-1]


def weight_names(layer: tf.keras.layers.Layer) -> Dict[Any, str]:
  """variable ref -> "<owning layer>/<weight>", e.g. "cell/kernel" (short
  names that do not depend on the name scope the weight was created in)."""
  names = {}
  for sub in layer._flatten_layers():  # pylint: disable=protected-access
    for weight in sub._trainable_weights:  # pylint: disable=protected-access
      names.setdefault(weight.ref(),
                       f"{sub.name}/{_weight_name(weight)}")
  return names
