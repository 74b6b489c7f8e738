"""FRODO (Xu et al. 2020) with Qiu's (2021) pseudo-label extension."""

from tf_metagrad.agents.frodo.config import FrodoConfig
from tf_metagrad.agents.frodo.learner import FrodoLearner
