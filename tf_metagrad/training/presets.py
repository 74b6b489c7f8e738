"""Per-domain defaults carrying the papers' hyperparameters.

- atari: STAC Table 3, Atari column (unroll 20, batch 32, learning rate
  6e-4 decayed linearly to 0, gamma 0.995, rewards clipped to [-1, 1]).
- dmc: STAC Table 3, control column (unroll 40, batch 24, learning rate
  1e-3 -> 1e-4, gamma 0.99, no reward clipping) and Table 2's control
  columns (features and pixels): an LSTM core of 256 after the torso, and
  heads of one hidden layer of 256 (Table 2 "head hiddens 256"; section 9.3
  calls each head "a two-layered MLP with 256 hidden units", which we read
  as that hidden layer plus the output layer). Table 2 gives the same heads
  for Atari, so the atari preset has them too.
  The ResNet channels stay IMPALA's (16, 32, 32) (`agents.networks`):
  Table 2's Atari column prints "(13, 32, 32)", which we take for a typo.
  Table 3's "overlap length" 30 (Atari: 0) is an unroll stride of 10: an
  actor writes an item every 10 steps holding the last 40 (`system.reverb_actor`),
  capped at the item unroll length when --unroll_length is shorter.
- toy: the seeds' small domains (Catch, random walk, two colors): unroll 20,
  batch 32, constant learning rate 6e-4, gamma 0.99, 2x256 MLP. 256 copies
  per actor: one policy call then serves 256 frames, which on 2 cores
  raised STAC-on-Catch throughput from about 15k to 18k env steps/s over 64
  copies (`benchmarks.throughput`); Catch is still solved in 500k steps.

An agent whose update reads its batch differently may change its family's
preset (`AgentConfig.preset_changes`, applied by `for_agent`): FRODO
changes the toy preset's step sizes and batch shape
(`agents.frodo.config`). Flags and overrides still win over both.
"""

import dataclasses
from typing import Any, Dict, Optional


@dataclasses.dataclass(frozen=True)
class Preset:
  unroll_length: int
  batch_size: int
  envs_per_actor: int
  config: Dict[str, Any]
  decay_learning_rate: bool
  # Steps between an actor's consecutive items; None: the unroll length.
  unroll_stride: Optional[int] = None

  def stride_for(self, item_unroll: int) -> int:
    """The default stride of items of `item_unroll` steps: this preset's
    `unroll_stride`, capped at `item_unroll` (no overlap)."""
    return min(self.unroll_stride or item_unroll, item_unroll)


PRESETS = {
    "toy": Preset(unroll_length=20, batch_size=32, envs_per_actor=256,
                  config=dict(gamma=0.99, learning_rate=6e-4),
                  decay_learning_rate=False),
    "atari": Preset(unroll_length=20, batch_size=32, envs_per_actor=8,
                    config=dict(gamma=0.995, learning_rate=6e-4,
                                end_learning_rate=0.0, reward_clip=1.0,
                                head_hidden_sizes=(256,)),
                    decay_learning_rate=True),
    "dmc": Preset(unroll_length=40, batch_size=24, envs_per_actor=4,
                  config=dict(gamma=0.99, learning_rate=1e-3,
                              end_learning_rate=1e-4, reward_clip=None,
                              core_units=256, head_hidden_sizes=(256,)),
                  decay_learning_rate=True, unroll_stride=10),
}


def for_agent(family: str, agent: str) -> Preset:
  """The preset `family` with `agent`'s changes to it
  (`AgentConfig.preset_changes`): its config fields over the preset's,
  and its batch shape where it gives one."""
  from tf_metagrad import agents  # pylint: disable=g-import-not-at-top
  preset = PRESETS[family]
  if agent not in agents.AGENTS:
    return preset  # make_config names the unknown agent.
  changes = agents.AGENTS[agent][0].preset_changes(family)
  shape = {name: getattr(changes, name)
           for name in ("unroll_length", "batch_size", "envs_per_actor")
           if getattr(changes, name) is not None}
  return dataclasses.replace(preset, config={**preset.config,
                                             **changes.config}, **shape)


def decay_steps(agent: str, config: Dict[str, Any], total_env_steps: int,
                frames_per_batch: int) -> int:
  """Learner updates in a run of `total_env_steps`: the length of the
  learning-rate decay (STAC Table 3).

  Args:
    agent: the agent name.
    config: the run's validated config overrides (they decide, e.g., DrMG's
      two updates per batch, `AgentConfig.updates_per_batch`).
    total_env_steps: the run's length in environment frames.
    frames_per_batch: frames one learner batch holds (unroll x batch).
  """
  from tf_metagrad import agents  # pylint: disable=g-import-not-at-top
  # decay_steps=1 only lets a config with an end_learning_rate validate.
  updates = agents.make_config(
      agent, **dict(config, decay_steps=1)).updates_per_batch()
  return max(1, total_env_steps // frames_per_batch) * updates


def family(env_name: str) -> str:
  """The preset family of an environment name."""
  if env_name.startswith("atari:"):
    return "atari"
  if env_name.startswith(("dmc:", "dmc_pixels:")):
    return "dmc"
  return "toy"
