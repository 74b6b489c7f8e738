"""DrMG (Yin et al. (2023)): distributional return meta-gradient RL."""

from tf_metagrad.agents.drmg.config import DrmgConfig
from tf_metagrad.agents.drmg.learner import DrmgLearner
