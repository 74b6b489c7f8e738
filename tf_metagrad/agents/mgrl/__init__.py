"""MGRL (Xu et al. 2018): meta-learned discount and lambda."""

from tf_metagrad.agents.mgrl.config import MgrlConfig
from tf_metagrad.agents.mgrl.learner import MgrlLearner
