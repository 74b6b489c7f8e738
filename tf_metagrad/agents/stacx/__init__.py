"""STACX (Zahavy et al. 2020): STAC with self-tuned auxiliary heads."""

from tf_metagrad.agents.stacx.config import StacxConfig
from tf_metagrad.agents.stacx.learner import StacxLearner
