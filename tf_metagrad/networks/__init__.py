"""Keras layers whose weights can be substituted by tensors (meta-gradients)."""

from tf_metagrad.networks.heads import GaussianPolicyValueHead
from tf_metagrad.networks.heads import PolicyQuantileHead
from tf_metagrad.networks.heads import PolicyValueHead
from tf_metagrad.networks.heads import QuantileValueHead
from tf_metagrad.networks.heads import SquashedGaussianPolicyHead
from tf_metagrad.networks.meta_networks import FrodoTargetNetwork
from tf_metagrad.networks.meta_networks import MetaParameters
from tf_metagrad.networks.meta_networks import MetaParamSpec
from tf_metagrad.networks.multi_head import MultiHead
from tf_metagrad.networks.params import call_with_weights
from tf_metagrad.networks.params import ParamLayer
from tf_metagrad.networks.params import read
from tf_metagrad.networks.params import substitute
from tf_metagrad.networks.primitives import Conv2D
from tf_metagrad.networks.primitives import Linear
from tf_metagrad.networks.primitives import LSTMCell
from tf_metagrad.networks.primitives import LSTMState
from tf_metagrad.networks.primitives import MLP
from tf_metagrad.networks.primitives import StaticLSTM
from tf_metagrad.networks.torsos import AtariResNetTorso
from tf_metagrad.networks.torsos import ConvTorso
from tf_metagrad.networks.torsos import MLPTorso
from tf_metagrad.networks.torsos import RecurrentCore
