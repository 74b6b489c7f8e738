"""IMPALA hyperparameters: the shared STAC Table 3 values, nothing tuned."""

import dataclasses

from tf_metagrad.agents import config as config_lib


@dataclasses.dataclass
class ImpalaConfig(config_lib.AgentConfig):
  """V-trace actor-critic with fixed gamma/lambda/loss weights (STAC eq. 1-2)."""
