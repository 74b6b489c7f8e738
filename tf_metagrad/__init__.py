"""tf_metagrad: meta-gradient reinforcement learning agents in TensorFlow 2."""

__version__ = "0.1.0"
