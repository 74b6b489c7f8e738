"""STACX hyperparameters: STAC's plus the number of heads (default 3)."""

import dataclasses

from tf_metagrad.agents.stac import config as stac_config


@dataclasses.dataclass
class StacxConfig(stac_config.StacConfig):
  """STACX: n policy/value heads on one torso, each with its own eta_i.

  Head 0 (the paper's head 1) acts and alone enters the outer loss; the
  auxiliary heads learn off-policy from head 0's data through leaky V-trace.
  """

  num_heads: int = 3

  def __post_init__(self):
    super().__post_init__()
    if self.num_heads < 1:
      raise ValueError(f"num_heads must be >= 1, got {self.num_heads}.")
