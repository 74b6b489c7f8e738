"""Differentiable optimizers, schedules and clipping for meta-gradient RL."""

from tf_metagrad.optim.optimizers import Adam
from tf_metagrad.optim.optimizers import AdamState
from tf_metagrad.optim.optimizers import RMSProp
from tf_metagrad.optim.optimizers import RMSPropState
from tf_metagrad.optim.optimizers import SGD
from tf_metagrad.optim.optimizers import SGDState
from tf_metagrad.optim.schedules import clip_by_global_norm
from tf_metagrad.optim.schedules import global_norm
from tf_metagrad.optim.schedules import linear_schedule
