"""Hyperparameters shared by every agent, with validation.

Defaults are STAC's Table 3 (supplement 9.3) for Atari, which follows IMPALA:
RMSProp (decay 0.99, epsilon 0.1), learning rate 6e-4 decayed linearly,
outer loss gamma 0.995, lambda 1, alpha 1, g_v 0.25, g_p 1, g_e 0.01,
g_kl 1, Adam meta-optimizer (1e-3, 0.9, 0.999, 1e-4), eta init 4.6.
`control_defaults()` gives the DM Control column (gamma 0.99, learning rate
1e-3 -> 1e-4, no reward clipping).
"""

import dataclasses
from typing import Optional, Tuple

_DTYPES = ("float32", "float64")
_TORSOS = ("auto", "mlp", "resnet", "conv")


def _check(cond: bool, message: str):
  if not cond:
    raise ValueError(message)


def _unit_interval(name: str, value: float, closed_low: bool = True):
  low_ok = value >= 0.0 if closed_low else value > 0.0
  _check(low_ok and value <= 1.0, f"{name} must be in [0, 1], got {value}.")


@dataclasses.dataclass
class AgentConfig:
  """Fields common to all agents (each agent's config extends it)."""

  # Numerics and compilation.
  dtype: str = "float32"
  jit_compile: bool = False
  seed: int = 0
  # Network.
  torso: str = "auto"
  mlp_hidden_sizes: Tuple[int, ...] = (256, 256)
  resnet_channels: Tuple[int, ...] = (16, 32, 32)
  head_hidden_sizes: Tuple[int, ...] = (256, 256)
  # Inner optimizer (STAC Table 3).
  learning_rate: float = 6e-4
  end_learning_rate: float = 0.0
  decay_steps: int = 0  # learner steps of the linear decay; 0 = constant.
  rmsprop_decay: float = 0.99
  rmsprop_epsilon: float = 0.1
  max_grad_norm: Optional[float] = 40.0
  differentiate_optimizer_state: bool = True
  # Loss (the fixed values; for meta agents these are the outer values).
  gamma: float = 0.995
  lambda_: float = 1.0
  alpha: float = 1.0
  g_v: float = 0.25
  g_p: float = 1.0
  g_e: float = 0.01
  clip_rho_threshold: float = 1.0
  clip_pg_rho_threshold: float = 1.0
  reward_clip: Optional[float] = 1.0
  # Meta-optimizer (STAC Table 3); unused by agents without metaparameters.
  meta_learning_rate: float = 1e-3
  meta_b1: float = 0.9
  meta_b2: float = 0.999
  meta_epsilon: float = 1e-4
  meta_max_grad_norm: Optional[float] = None
  meta_init: float = 4.6
  outer_batch: str = "same"  # "same" (STAC) or "split" (two halves).
  # None: the (leaky) V-trace lambda-return; n: the n-step bootstrapped
  # return instead (a fixed n-step target; DrMG's "+n-step" ablation).
  n_step: Optional[int] = None
  # Distributional value head (quantiles), seed 002.
  distributional: bool = False
  num_quantiles: int = 16
  kappa: float = 1.0

  def __post_init__(self):
    _check(self.dtype in _DTYPES,
           f"dtype must be one of {_DTYPES}, got {self.dtype!r}.")
    _check(self.torso in _TORSOS,
           f"torso must be one of {_TORSOS}, got {self.torso!r}.")
    for name in ("mlp_hidden_sizes", "resnet_channels", "head_hidden_sizes"):
      sizes = tuple(getattr(self, name))
      _check(len(sizes) > 0 and all(int(s) > 0 for s in sizes),
             f"{name} must be a non-empty tuple of positive ints, got {sizes}.")
      setattr(self, name, tuple(int(s) for s in sizes))
    _check(self.learning_rate > 0,
           f"learning_rate must be > 0, got {self.learning_rate}.")
    _check(self.end_learning_rate >= 0,
           f"end_learning_rate must be >= 0, got {self.end_learning_rate}.")
    _check(self.decay_steps >= 0,
           f"decay_steps must be >= 0, got {self.decay_steps}.")
    _check(0 <= self.rmsprop_decay < 1,
           f"rmsprop_decay must be in [0, 1), got {self.rmsprop_decay}.")
    _check(self.rmsprop_epsilon > 0,
           f"rmsprop_epsilon must be > 0, got {self.rmsprop_epsilon}.")
    for name in ("max_grad_norm", "meta_max_grad_norm", "reward_clip"):
      value = getattr(self, name)
      _check(value is None or value > 0,
             f"{name} must be > 0 or None, got {value}.")
    for name in ("gamma", "lambda_", "alpha"):
      _unit_interval(name, getattr(self, name))
    for name in ("g_v", "g_p", "g_e", "kappa"):
      _check(getattr(self, name) >= 0,
             f"{name} must be >= 0, got {getattr(self, name)}.")
    for name in ("clip_rho_threshold", "clip_pg_rho_threshold"):
      _check(getattr(self, name) > 0,
             f"{name} must be > 0, got {getattr(self, name)}.")
    _check(self.meta_learning_rate > 0,
           f"meta_learning_rate must be > 0, got {self.meta_learning_rate}.")
    _unit_interval("meta_b1", self.meta_b1)
    _unit_interval("meta_b2", self.meta_b2)
    _check(self.meta_epsilon > 0,
           f"meta_epsilon must be > 0, got {self.meta_epsilon}.")
    _check(self.n_step is None or (isinstance(self.n_step, int)
                                   and self.n_step >= 1),
           f"n_step must be None or an int >= 1, got {self.n_step!r}.")
    _check(self.outer_batch in ("same", "split"),
           f"outer_batch must be 'same' or 'split', got {self.outer_batch!r}.")
    _check(self.num_quantiles >= 1,
           f"num_quantiles must be >= 1, got {self.num_quantiles}.")


def control_defaults() -> dict:
  """Overrides for DM Control (STAC Table 3, control column)."""
  return dict(gamma=0.99, learning_rate=1e-3, end_learning_rate=1e-4,
              reward_clip=None)
