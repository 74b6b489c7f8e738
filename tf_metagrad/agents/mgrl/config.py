"""MGRL hyperparameters (Xu et al. 2018; STAC supplement 9.5).

The gamma embedding is on by default. Xu et al. (2018, section 1.4)
condition the value and policy on the discount they meta-learn, and STAC's
supplement (section 9.5, Zahavy et al. 2020) reports their numbers: with
only gamma meta-learned, the median human-normalised score was 183% without
the embedding (below their IMPALA baseline) and 267.9% with it, and 287.7%
with gamma and lambda embedded. STAC's own reimplementation lost less
without it (243% -> 240% with gamma alone) and reached 280.6% for
{gamma, lambda} once it added the embedding. `gamma_embedding=False` keeps
the unconditioned network (STAC's architecture) as an ablation.
"""

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
    gamma_embedding: condition the policy and value on gamma through a
      learned linear embedding concatenated to the torso output (default
      True, Xu et al. 2018 section 1.4, STAC supplement 9.5; False: the
      unconditioned network). The inner loss evaluates the
      network at the meta-learned gamma (so the meta-gradient also flows
      through the network input); acting and the outer loss use the
      reference gamma'.
    gamma_embedding_size: width of that embedding.
  """

  meta_learned: Tuple[str, ...] = MGRL_ETA
  g_kl: float = 0.0
  gamma_embedding: bool = True
  gamma_embedding_size: int = 16

  def __post_init__(self):
    super().__post_init__()
    names = tuple(self.meta_learned)
    unknown = sorted(set(names) - set(MGRL_ETA))
    if unknown or not names:
      raise ValueError(
          f"meta_learned must be a non-empty subset of {MGRL_ETA}, got "
          f"{names}.")
    self.meta_learned = names
    if self.gamma_embedding_size < 1:
      raise ValueError(f"gamma_embedding_size must be >= 1, got "
                       f"{self.gamma_embedding_size}.")
    if self.g_kl < 0:
      raise ValueError(f"g_kl must be >= 0, got {self.g_kl}.")

  def eta_names(self) -> Tuple[str, ...]:
    return self.meta_learned
