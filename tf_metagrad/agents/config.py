"""Hyperparameters shared by every agent, with validation.

Defaults are STAC's Table 3 (supplement 9.3) for Atari, which follows IMPALA:
RMSProp (decay 0.99, epsilon 0.1), learning rate 6e-4 decayed linearly,
outer loss gamma 0.995, lambda 1, alpha 1, g_v 0.25, g_p 1, g_e 0.01,
g_kl 1, Adam meta-optimizer (1e-3, 0.9, 0.999, 1e-4), eta init 4.6.
`control_defaults()` gives the DM Control column (gamma 0.99, learning rate
1e-3 -> 1e-4, no reward clipping).

Learning-rate decay is opt-in: `end_learning_rate=None` (the default) keeps
the learning rate constant; a linear decay (STAC Table 3) needs both
`end_learning_rate` and `decay_steps > 0`, because the length of the decay
depends on the run (the trainers derive it from the total environment
steps). An `end_learning_rate` that would be ignored is an error.

`dtype` is the dtype of every variable (network weights, optimizer and
meta-optimizer state, metaparameters) and of the losses, returns and
meta-gradient. `compute_dtype="bfloat16"` follows Keras' mixed-precision
convention (policy "mixed_bfloat16"): the torso, core and heads compute in
bfloat16 from float32 weights, and the network's outputs (logits, values,
quantiles, Gaussian mean and std, core state) are cast back to float32
before anything else sees them. TPUs have no float64 arithmetic, so a TPU
run needs `dtype="float32"` (`check_tpu_dtype`).
"""

import dataclasses
import numbers
import typing
from typing import Any, Dict, Optional, Tuple, Union

_DTYPES = ("float32", "float64")
_COMPUTE_DTYPES = ("float32", "float64", "bfloat16")
_TORSOS = ("auto", "mlp", "resnet", "conv")
_META_OPTIMIZERS = ("adam", "rmsprop")


def _check(cond: bool, message: str):
  if not cond:
    raise ValueError(message)


def _unit_interval(name: str, value: float, closed_low: bool = True):
  low_ok = value >= 0.0 if closed_low else value > 0.0
  _check(low_ok and value <= 1.0, f"{name} must be in [0, 1], got {value}.")


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _coerce(name: str, value, annotation):
  """`value` converted to the field type `annotation`, or a TypeError.

  Handles the annotations the agent configs use (bool, int, float, str, their
  Optional forms and homogeneous tuples); other annotations are left to the
  config's own checks.
  """
  args = typing.get_args(annotation)
  if typing.get_origin(annotation) is typing.Union and type(None) in args:
    if value is None:
      return None
    rest = [a for a in args if a is not type(None)]
    if len(rest) != 1:
      return value
    annotation = rest[0]
    args = typing.get_args(annotation)
  if typing.get_origin(annotation) in (tuple, Tuple) and args[-1:] == (...,):
    item = args[0]
    if not isinstance(value, (tuple, list)):
      raise TypeError(f"{name} must be a tuple of {item.__name__} values, got "
                      f"{value!r} ({type(value).__name__}).")
    return tuple(_coerce(f"{name}[{i}]", v, item)
                 for i, v in enumerate(value))
  checks = {bool: lambda v: isinstance(v, bool), int: _is_int,
            float: _is_real, str: lambda v: isinstance(v, str)}
  if annotation not in checks:
    return value
  if not checks[annotation](value):
    raise TypeError(f"{name} must be a{'n' if annotation is int else ''} "
                    f"{annotation.__name__}, got {value!r} "
                    f"({type(value).__name__}).")
  return annotation(value)


@dataclasses.dataclass(frozen=True)
class PresetChanges:
  """What an agent changes in a domain preset (`training.presets`): config
  fields over the preset's, and the batch shape (None: the preset's).

  An agent whose update reads its batch differently from the actor-critic
  agents measured for the preset (FRODO: M + 1 consecutive segments per
  item, one meta update per learner step) may need other step sizes and
  batch shapes; its config class says which, per preset family.
  """

  config: Dict[str, Any] = dataclasses.field(default_factory=dict)
  unroll_length: Optional[int] = None
  batch_size: Optional[int] = None
  envs_per_actor: Optional[int] = None


@dataclasses.dataclass
class AgentConfig:
  """Fields common to all agents (each agent's config extends it)."""

  # Numerics and compilation.
  dtype: str = "float32"
  # None: compute in `dtype`. "bfloat16" (with dtype float32 only): see the
  # module docstring.
  compute_dtype: Optional[str] = None
  # True, False or "auto" (XLA where it was measured to pay off; see
  # `tf_metagrad.distribute.xla.resolve_jit_compile`).
  jit_compile: Union[bool, str] = "auto"
  seed: int = 0
  # Network.
  torso: str = "auto"
  mlp_hidden_sizes: Tuple[int, ...] = (256, 256)
  resnet_channels: Tuple[int, ...] = (16, 32, 32)
  head_hidden_sizes: Tuple[int, ...] = (256, 256)
  # LSTM core after the torso (STAC Table 2, control: 256); 0 = none.
  core_units: int = 0
  # Inner optimizer (STAC Table 3).
  learning_rate: float = 6e-4
  # None: constant learning rate. Otherwise the value reached after
  # `decay_steps` learner steps of a linear decay (STAC Table 3: 0 for Atari,
  # 1e-4 for control).
  end_learning_rate: Optional[float] = None
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
  # "adam" (STAC Table 3): Adam with meta_b1, meta_b2 and meta_epsilon
  # outside the root. "rmsprop" (Qiu (2021) section 5.2's meta-optimizer,
  # RMSprop at 1e-2): `optim.RMSProp` with decay meta_b2 and meta_epsilon
  # INSIDE the root (meta_b1 unused); PyTorch's RMSprop, Qiu's (2021), has
  # decay 0.99 and epsilon 1e-8 outside the root, which meta_b2=0.99 and
  # meta_epsilon=1e-16 express to within a factor sqrt(2) in the step's
  # denominator (and exactly wherever sqrt(ms) >> 1e-8).
  meta_optimizer: str = "adam"
  meta_learning_rate: float = 1e-3
  meta_b1: float = 0.9
  meta_b2: float = 0.999
  meta_epsilon: float = 1e-4
  meta_max_grad_norm: Optional[float] = None
  meta_init: float = 4.6
  # "same" (STAC) or "split": inner loss on the first half of the batch,
  # outer on the second (DrMG's default, where the halves also swap roles
  # in a second update; see `DrmgConfig`).
  outer_batch: str = "same"
  # None: the (leaky) V-trace lambda-return; n: the n-step bootstrapped
  # return instead (a fixed n-step target; DrMG's "+n-step" ablation).
  n_step: Optional[int] = None
  # Distributional value head (quantiles), Yin et al. (2023).
  distributional: bool = False
  num_quantiles: int = 16
  kappa: float = 1.0

  def __post_init__(self):
    hints = typing.get_type_hints(type(self))
    for field in dataclasses.fields(self):
      setattr(self, field.name, _coerce(field.name, getattr(self, field.name),
                                        hints[field.name]))
    _check(self.dtype in _DTYPES,
           f"dtype must be one of {_DTYPES}, got {self.dtype!r}.")
    _check(self.compute_dtype is None
           or self.compute_dtype in _COMPUTE_DTYPES,
           f"compute_dtype must be None or one of {_COMPUTE_DTYPES}, got "
           f"{self.compute_dtype!r}.")
    # Mixed precision only lowers the compute precision below the weights'.
    _check(self.compute_dtype in (None, self.dtype)
           or (self.compute_dtype == "bfloat16" and self.dtype == "float32"),
           f"compute_dtype={self.compute_dtype!r} needs dtype='float32' "
           f"(bfloat16 compute keeps float32 weights) or compute_dtype equal "
           f"to dtype, got dtype={self.dtype!r}.")
    _check(isinstance(self.jit_compile, bool) or self.jit_compile == "auto",
           f"jit_compile must be True, False or 'auto', got "
           f"{self.jit_compile!r}.")
    _check(self.torso in _TORSOS,
           f"torso must be one of {_TORSOS}, got {self.torso!r}.")
    for name in ("mlp_hidden_sizes", "resnet_channels"):
      sizes = getattr(self, name)
      _check(len(sizes) > 0 and all(s > 0 for s in sizes),
             f"{name} must be a non-empty tuple of positive ints, got {sizes}.")
    # () is allowed: linear heads on the torso's features, as in IMPALA.
    _check(all(s > 0 for s in self.head_hidden_sizes),
           f"head_hidden_sizes must be a tuple of positive ints (empty for "
           f"linear heads), got {self.head_hidden_sizes}.")
    _check(self.core_units >= 0,
           f"core_units must be >= 0, got {self.core_units}.")
    _check(self.learning_rate > 0,
           f"learning_rate must be > 0, got {self.learning_rate}.")
    _check(self.end_learning_rate is None or self.end_learning_rate >= 0,
           f"end_learning_rate must be >= 0 or None, got "
           f"{self.end_learning_rate}.")
    _check(self.decay_steps >= 0,
           f"decay_steps must be >= 0, got {self.decay_steps}.")
    # A schedule with one of its two ends missing would silently be constant.
    _check(self.decay_steps == 0 or self.end_learning_rate is not None,
           f"decay_steps={self.decay_steps} needs end_learning_rate (the "
           f"learning rate reached after the decay), got None.")
    _check(self.decay_steps > 0 or self.end_learning_rate is None
           or self.end_learning_rate == self.learning_rate,
           f"end_learning_rate={self.end_learning_rate} differs from "
           f"learning_rate={self.learning_rate} but decay_steps=0, so it "
           "would have no effect; set decay_steps > 0 (learner steps of the "
           "linear decay) or end_learning_rate=None.")
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
    # Adam's bias correction divides by 1 - b^t (STAC Table 3's optimizer).
    for name in ("meta_b1", "meta_b2"):
      _check(0 <= getattr(self, name) < 1,
             f"{name} must be in [0, 1), got {getattr(self, name)}.")
    _check(self.meta_epsilon > 0,
           f"meta_epsilon must be > 0, got {self.meta_epsilon}.")
    _check(self.meta_optimizer in _META_OPTIMIZERS,
           f"meta_optimizer must be one of {_META_OPTIMIZERS}, got "
           f"{self.meta_optimizer!r}.")
    _check(self.n_step is None or self.n_step >= 1,
           f"n_step must be None or an int >= 1, got {self.n_step!r}.")
    _check(self.outer_batch in ("same", "split"),
           f"outer_batch must be 'same' or 'split', got {self.outer_batch!r}.")
    _check(self.num_quantiles >= 1,
           f"num_quantiles must be >= 1, got {self.num_quantiles}.")


  def updates_per_batch(self) -> int:
    """Learner updates one batch feeds (each advances `learner_steps`)."""
    return 1

  def unrolls_per_item(self) -> int:
    """Consecutive unrolls of the run's unroll length that one queue item
    holds: one, except for agents that read several trajectories in time
    order per update (FRODO: M inner and one outer)."""
    return 1

  @classmethod
  def preset_changes(cls, family: str) -> PresetChanges:
    """This agent's changes to the domain preset `family` ("toy", "atari",
    "dmc"); none by default."""
    del family
    return PresetChanges()


def dtype_policy(config: AgentConfig) -> str:
  """The Keras dtype policy of the agent network for `config`: "float32",
  "float64", or "mixed_bfloat16" (float32 variables, bfloat16 compute)."""
  if config.compute_dtype == "bfloat16":
    return "mixed_bfloat16"
  return config.dtype


def check_tpu_dtype(dtype: str) -> None:
  """Raises unless a learner of variable dtype `dtype` can run on a TPU.

  Args:
    dtype: the config's `dtype`.

  Raises:
    ValueError: `dtype` is not float32 (TPU cores have no float64 units, and
      XLA's TPU backend rejects float64 programs).
  """
  if dtype != "float32":
    raise ValueError(
        f"dtype={dtype!r} cannot run on a TPU (no float64 arithmetic there); "
        f"expected dtype='float32', optionally with "
        f"compute_dtype='bfloat16'.")


def control_defaults(decay_steps: int) -> dict:
  """Overrides for DM Control (STAC Table 3, control column).

  Args:
    decay_steps: learner steps over which the learning rate decays linearly
      from 1e-3 to 1e-4 (the length of the run).
  """
  return dict(gamma=0.99, learning_rate=1e-3, end_learning_rate=1e-4,
              decay_steps=decay_steps, reward_clip=None)
