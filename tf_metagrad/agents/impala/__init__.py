"""IMPALA (Espeholt et al. 2018): the V-trace actor-critic baseline."""

from tf_metagrad.agents.impala.config import ImpalaConfig
from tf_metagrad.agents.impala.learner import ImpalaLearner
