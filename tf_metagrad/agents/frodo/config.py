"""FRODO hyperparameters (Qiu (2021) sections 3-5; Xu et al. 2020).

The meta-network's inputs follow Qiu (2021): the four that its section 4.1
lists (observation x_t, reward, discount, and the agent's value of the next
state) and that the code of its section 5.2 stacks into a 4-feature step
input; here the observation enters flattened, so its size is the
observation's (`use_observation=False` drops it).

Direction: the LSTM runs backward in time by default (`meta_direction=
"backward"`: from the last step of the trajectory to the first), so its
output at step t has read steps t..T-1, as a multi-step return does. Qiu's
(2021) code feeds its LSTM in time order ("forward"), where the output at t
has read steps 0..t only. Without the observation input it holds r_t and
v(x_{t+1}) but none of the later rewards, i.e. it can express a one-step
target at best; with it, the target can also be a learned function of
x_t, which carries later rewards only as far as the meta-network learns
to value states. On Catch, whose only reward comes at an episode's end,
that is what we measure (docs/results/frodo_catch, 1M steps, 3 seeds,
mean return over the last tenth, toy-preset defaults below): backward
learns in every seed (0.93; 0.82 with the pseudo-label extension), forward
late and not in every seed (0.51), and forward without the observation
input not at all (-0.07, an earlier run). "forward" stays one setting
away.

Choices where Qiu (2021) is silent or ambiguous:
- M = 5 inner trajectories and 1 held-out outer trajectory per learner step:
  Qiu (2021) 4.1.2 says a reward switch every 960 steps of 16-step
  trajectories is 10 FRODO iterations, i.e. 6 trajectories per iteration.
  On the toy domains the trainer uses M = 2 and larger step sizes
  (`preset_changes`, measured on Catch).
  One learner batch of unroll (M+1) L is cut in time into M+1 consecutive
  segments of length L (consecutive, so non-stationarity is seen in order).
  The outer trajectory is therefore always the last segment, and
  `outer_batch` must stay "same".
- The outer ("canonical") loss is the V-trace actor-critic loss with the
  fixed gamma, lambda and loss weights of the config.
- The pseudo-label term (section 5) is the same fixed-target loss on the M
  inner trajectories, evaluated at the updated parameters theta' (the only
  parameters that depend on eta), weighted b1 or a normalised b1
  (`pseudo_label_normalize`):
  - "outer" is Qiu's (2021) own form (section 5 and 5.1): b1 / L_outer, with
    the canonical outer loss stop-gradiented; its absolute value is used,
    because an actor-critic pseudo-loss (policy and entropy terms) has no
    sign;
  - "value" is b1 / L_value_outer, the outer value loss only, which is
    positive and falls as the meta-network improves (the earlier default
    of this library; `True` still means "value", `False` "none").
"""

import dataclasses
from typing import Union

from tf_metagrad.agents import config as config_lib

PSEUDO_LABEL_NORMALIZERS = ("none", "outer", "value")
META_DIRECTIONS = ("forward", "backward")


# FRODO's changes to the toy preset (ours, measured on Catch with 3 seeds per
# setting in docs/results/frodo_catch). With the preset's values (M = 5,
# learning rate 6e-4, meta Adam 1e-3, 32 items of 6 x 20 steps, 256 copies
# per actor) a learner step takes 3,840 frames, so 1M frames make 260 meta
# updates, and FRODO reached a return of 0.16 by then. Items of 3 x 16 steps
# in batches of 8 make 2,600. The meta-network's Adam at 1e-2 moves it
# within that budget; the agent's RMSProp at 1e-2 learns Catch but its
# returns swing between 0.1 and 1.0 late in a run (mean over the last tenth
# 0.91 plain, 0.69 with the pseudo-label extension), 5e-3 swings less,
# and 3e-3 holds (0.91 and 0.97). Fewer copies per actor keep the behaviour
# policy close to the learner's.
_TOY_CHANGES = config_lib.PresetChanges(
    config=dict(num_inner_steps=2, learning_rate=3e-3,
                meta_learning_rate=1e-2),
    unroll_length=16, batch_size=8, envs_per_actor=64)


@dataclasses.dataclass
class FrodoConfig(config_lib.AgentConfig):
  """FRODO: an LSTM meta-network outputs the inner loss's value target.

  Attributes:
    num_inner_steps: M inner updates, each on its own trajectory.
    meta_units: LSTM size of the meta-network (Qiu (2021): 32).
    meta_use_bias: whether the meta-network's LSTM has a gate bias and the
      constant forget bias. Qiu (2021) section 5.2 builds its LSTM with
      `bias=False`; the default True keeps this library's earlier network.
    use_observation: also feed the flattened observation x_t to the
      meta-network (default True: Qiu (2021) section 4.1 and 5.2 feed it).
      Every observation entry becomes an LSTM input, so large observations
      such as Atari frames (84 x 84 x 4) want False.
    meta_direction: "backward" (default: from the last step to the first,
      see above) or "forward" (Qiu (2021) section 5.2's LSTM over the steps
      in time order).
    pseudo_label_weight: b1 of Qiu (2021) section 5 (0 = plain FRODO).
    pseudo_label_normalize: "none" (weight b1), "outer" (b1 / |L_outer|,
      Qiu (2021) section 5) or "value" (b1 / L_value_outer); the normaliser is
      stop-gradiented. The booleans True / False are read as "value" /
      "none".
    g_kl: optional KL(pi_theta' || pi_theta) weight in the outer loss.
  """

  num_inner_steps: int = 5
  meta_units: int = 32
  meta_use_bias: bool = True
  use_observation: bool = True
  meta_direction: str = "backward"
  pseudo_label_weight: float = 0.0
  pseudo_label_normalize: Union[str, bool] = "none"
  g_kl: float = 0.0

  def unrolls_per_item(self) -> int:
    """M inner trajectories and the outer one, consecutive in time."""
    return self.num_inner_steps + 1

  @classmethod
  def preset_changes(cls, family: str) -> config_lib.PresetChanges:
    """`_TOY_CHANGES` on the toy domains (`family` "toy"); none
    elsewhere."""
    if family == "toy":
      return _TOY_CHANGES
    return config_lib.PresetChanges()

  def __post_init__(self):
    if isinstance(self.pseudo_label_normalize, bool):
      self.pseudo_label_normalize = (
          "value" if self.pseudo_label_normalize else "none")
    super().__post_init__()
    if self.pseudo_label_normalize not in PSEUDO_LABEL_NORMALIZERS:
      raise ValueError(
          f"pseudo_label_normalize must be one of {PSEUDO_LABEL_NORMALIZERS} "
          f"(or a bool), got {self.pseudo_label_normalize!r}.")
    if self.meta_direction not in META_DIRECTIONS:
      raise ValueError(
          f"meta_direction must be one of {META_DIRECTIONS}, got "
          f"{self.meta_direction!r}.")
    if self.outer_batch != "same":
      raise ValueError(
          "FRODO's outer trajectory is the last of the M+1 segments of the "
          "unroll, so outer_batch must be 'same', got "
          f"{self.outer_batch!r}.")
    if self.num_inner_steps < 1:
      raise ValueError(
          f"num_inner_steps must be >= 1, got {self.num_inner_steps}.")
    if self.meta_units < 1:
      raise ValueError(f"meta_units must be >= 1, got {self.meta_units}.")
    if self.pseudo_label_weight < 0:
      raise ValueError(
          f"pseudo_label_weight must be >= 0, got {self.pseudo_label_weight}.")
    if self.g_kl < 0:
      raise ValueError(f"g_kl must be >= 0, got {self.g_kl}.")
