"""Environments for tf_metagrad agents.

Entry points:
  make(name, seed=None, **kwargs) -> gymnasium.Env
  make_batched(name, num_envs, seed=None, **kwargs) -> BatchedEnv

Names: "catch", "random_walk", "two_colors", "time_limit", "atari:<Game>",
"dmc:<domain>-<task>", "dmc_pixels:<domain>-<task>", "gym:<id>",
"gym:<module>:<id>", "dm_env:<module>:<callable>". Every environment exposes
`observation_spec` (a `tf.TensorSpec` of one observation: float32 for toy
domains, DM Control features and float Gym observations; uint8 for Atari and
pixels) and `action_space` (`Discrete` or `Box(-1, 1)`).

Importing this package registers the toy domains with Gymnasium as
"tf_metagrad/Catch-v0", "tf_metagrad/RandomWalk-v0" and
"tf_metagrad/TwoColors-v0" (`register_gymnasium_ids`, safe to call again).
Gymnasium 1.x dropped the entry-point plugin discovery of 0.26-0.29, so
nothing registers them at install time; without the import, use
`gymnasium.make("tf_metagrad.envs:tf_metagrad/Catch-v0")`, which imports it.
Note that `gymnasium.make` wraps the environment, so `observation_spec` is
then reached through `env.unwrapped`.
"""

import gymnasium

from tf_metagrad.envs import atari_scores
from tf_metagrad.envs.batched import BatchedEnv
from tf_metagrad.envs.batched import BatchStep
from tf_metagrad.envs.catch import CatchEnv
from tf_metagrad.envs.random_walk import random_walk_values
from tf_metagrad.envs.random_walk import RandomWalkEnv
from tf_metagrad.envs.registry import make
from tf_metagrad.envs.registry import make_batched
from tf_metagrad.envs.registry import VALID_NAMES
from tf_metagrad.envs.seeding import derive_seed
from tf_metagrad.envs.two_colors import TwoColorsEnv

GYMNASIUM_IDS = {
    "tf_metagrad/Catch-v0": "tf_metagrad.envs.catch:CatchEnv",
    "tf_metagrad/RandomWalk-v0": "tf_metagrad.envs.random_walk:RandomWalkEnv",
    "tf_metagrad/TwoColors-v0": "tf_metagrad.envs.two_colors:TwoColorsEnv",
}


def register_gymnasium_ids() -> None:
  """Registers `GYMNASIUM_IDS` with Gymnasium; ids already there are kept.

  Gymnasium warns when an id is registered twice, and a user who registered
  one of these ids on purpose keeps theirs.
  """
  for env_id, entry_point in GYMNASIUM_IDS.items():
    if env_id not in gymnasium.registry:
      gymnasium.register(id=env_id, entry_point=entry_point)


register_gymnasium_ids()

__all__ = [
    "BatchStep", "BatchedEnv", "CatchEnv", "GYMNASIUM_IDS", "RandomWalkEnv",
    "TwoColorsEnv", "VALID_NAMES", "atari_scores", "derive_seed", "make",
    "make_batched", "random_walk_values", "register_gymnasium_ids",
]
