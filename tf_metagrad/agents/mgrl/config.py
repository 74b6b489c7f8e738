"""MGRL hyperparameters (Xu et al. 2018; STAC supplement 9.5)."""

import dataclasses
from typing import Tuple

from tf_metagrad.agents import config as config_lib

MGRL_ETA = ("gamma", "lambda_")


@dataclasses.dataclass
class MgrlConfig(config_lib.AgentConfig):
  """MGRL: eta = {gamma, lambda}; the outer loss uses the reference values.

  Attributes:
    meta_learned: subset of {gamma, lambda_} to meta-learn.
    g_kl: KL weight in the outer loss (0: Xu et al. 2018 had none).
  """

  meta_learned: Tuple[str, ...] = MGRL_ETA
  g_kl: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    names = tuple(self.meta_learned)
    unknown = sorted(set(names) - set(MGRL_ETA))
    if unknown or not names:
      raise ValueError(
          f"meta_learned must be a non-empty subset of {MGRL_ETA}, got "
          f"{names}.")
    self.meta_learned = names
    if self.g_kl < 0:
      raise ValueError(f"g_kl must be >= 0, got {self.g_kl}.")

  def eta_names(self) -> Tuple[str, ...]:
    return self.meta_learned
