"""Agents: `make_learner(agent, observation_spec, action_spec, **overrides)`,
and `TrajectoryCollector`, which turns a batched environment into batches
for `Learner.step`."""

import dataclasses
from typing import Any, Optional

import gymnasium
import tensorflow as tf

from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import config as config_lib
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.collect import TrajectoryCollector
from tf_metagrad.agents.drmg import DrmgConfig, DrmgLearner
from tf_metagrad.agents.frodo import FrodoConfig, FrodoLearner
from tf_metagrad.agents.impala import ImpalaConfig, ImpalaLearner
from tf_metagrad.agents.mgrl import MgrlConfig, MgrlLearner
from tf_metagrad.agents.stac import StacConfig, StacLearner
from tf_metagrad.agents.stacx import StacxConfig, StacxLearner

AGENTS = {
    "impala": (ImpalaConfig, ImpalaLearner),
    "mgrl": (MgrlConfig, MgrlLearner),
    "stac": (StacConfig, StacLearner),
    "stacx": (StacxConfig, StacxLearner),
    "frodo": (FrodoConfig, FrodoLearner),
    "drmg": (DrmgConfig, DrmgLearner),
}


def make_config(agent: str, **overrides: Any) -> config_lib.AgentConfig:
  """The validated config of `agent` with `overrides` applied."""
  if agent not in AGENTS:
    raise ValueError(
        f"Unknown agent {agent!r}; allowed: {sorted(AGENTS)}.")
  config_cls = AGENTS[agent][0]
  fields = {f.name for f in dataclasses.fields(config_cls)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(
        f"Unknown config field(s) {unknown} for agent {agent!r}; allowed: "
        f"{sorted(fields)}.")
  return config_cls(**overrides)


def make_learner(agent: str, observation_spec: Any,
                 action_spec: gymnasium.spaces.Space,
                 strategy: Optional[tf.distribute.Strategy] = None,
                 **config_overrides: Any) -> actor_critic.ActorCriticLearner:
  """Builds the learner of `agent` for the given specs.

  Args:
    agent: one of `AGENTS`.
    observation_spec: a `tf.TensorSpec` of one observation, or a nest of
      them (flattened into one vector for the MLP torso).
    action_spec: a `gymnasium.spaces.Discrete` or `Box`.
    strategy: optional `tf.distribute.Strategy` (variables go in its scope).
    **config_overrides: fields of the agent's config dataclass.

  Returns:
    The learner.
  """
  config = make_config(agent, **config_overrides)
  strategy = strategy or tf.distribute.get_strategy()
  tf.keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    # One builder for every agent: what differs between their networks
    # (heads, quantiles, gamma embedding, core) is read off the config.
    network = networks_lib.make_network(config, observation_spec,
                                        action_spec)
  return AGENTS[agent][1](config, network, strategy=strategy)
