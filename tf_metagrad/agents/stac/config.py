"""STAC hyperparameters (STAC section 3 and supplement Table 3)."""

import dataclasses
from typing import Tuple

from tf_metagrad.agents import config as config_lib

STAC_ETA = ("gamma", "lambda_", "alpha", "g_v", "g_p", "g_e")


@dataclasses.dataclass
class StacConfig(config_lib.AgentConfig):
  """STAC: eta = {gamma, lambda, alpha, g_v, g_p, g_e} by default.

  Attributes:
    meta_learned: the subset of eta that is self-tuned (STAC fig. 2b
      ablations); the others stay fixed at their outer (config) values.
    separate_alphas: learn alpha_rho and alpha_c separately instead of one
      alpha (STAC fig. 5b); "alpha" in `meta_learned` then means both.
    g_kl: weight of KL(pi_theta' || pi_theta) in the outer loss.
  """

  meta_learned: Tuple[str, ...] = STAC_ETA
  separate_alphas: bool = False
  g_kl: float = 1.0

  def __post_init__(self):
    super().__post_init__()
    names = tuple(self.meta_learned)
    unknown = sorted(set(names) - set(STAC_ETA))
    if unknown:
      raise ValueError(
          f"meta_learned has unknown names {unknown}; allowed: {STAC_ETA}.")
    if len(set(names)) != len(names):
      raise ValueError(f"meta_learned has duplicates: {names}.")
    self.meta_learned = names
    if self.g_kl < 0:
      raise ValueError(f"g_kl must be >= 0, got {self.g_kl}.")

  def eta_names(self) -> Tuple[str, ...]:
    """Metaparameter names as the loss knows them."""
    out = []
    for name in self.meta_learned:
      if name == "alpha" and self.separate_alphas:
        out += ["alpha_rho", "alpha_c"]
      else:
        out.append(name)
    return tuple(out)
