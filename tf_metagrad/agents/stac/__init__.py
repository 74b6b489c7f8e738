"""STAC (Zahavy et al. 2020): self-tuning actor-critic with leaky V-trace."""

from tf_metagrad.agents.stac.config import StacConfig
from tf_metagrad.agents.stac.learner import StacLearner
