"""The agent network: a torso chosen from the observation spec, and heads.

Torso (STAC supplement Table 2): `[H, W, 4]` uint8 frames -> the IMPALA deep
ResNet (Atari) with IMPALA's channels (16, 32, 32) (Table 2 prints
"(13, 32, 32)", taken for a typo); `[H, W, 3]` uint8 pixels -> the DM
Control conv torso; any other observation is flattened and fed to a
(256, 256) MLP (features, toy domains). Heads: one or more (STACX)
policy/value heads; discrete actions get softmax logits, `Box` actions a
tanh-squashed Gaussian; the value is a scalar or N quantiles
(distributional).

Every agent's network comes from `make_network`, which reads what differs
off the config: IMPALA and STAC one policy/value head (STAC Table 2); MGRL
that head conditioned on gamma through a learned embedding (Xu et al. 2018
section 1.4, STAC supplement 9.5); STACX `num_heads` heads on one torso,
head 0 acting (STAC section 3.2); DrMG, or any agent with `distributional`,
an N-quantile value head (Yin et al. (2023) section 4). FRODO's meta-network is its
own (`agents.frodo.networks`).

The network always stacks heads on a leading axis (size 1 without STACX), so
outputs are `(logits [n, ..., A], value [n, ...] or [n, ..., N])` or
`(mean, std, value)` for continuous actions.

With `core_units > 0` an LSTM core (STAC supplement Table 2: 256 units for
control) sits between the torso and the heads. The learner then calls the
network on a time-major unroll `[T+1, B, ...]` with the acting policy's state
before x_0 and the episode-start mask; the actor advances the core one step
at a time with `acting_step`. Both read the same weights, so the learner
reproduces the actor's outputs exactly.

Under a mixed dtype policy ("mixed_bfloat16", config `compute_dtype`) every
layer computes in bfloat16 from float32 weights, and what leaves the network
(head outputs, the core state handed to actors, Reverb and exports) is cast
back to the variable dtype: the losses, returns and meta-gradient then stay
float32, as Keras' mixed-precision guide asks of a model's outputs. A core
state passed back in is cast to bfloat16 again, which is exact, so the
learner still reproduces the actor.
"""

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad.agents import config as config_lib
from tf_metagrad.agents import distributions
from tf_metagrad.networks import heads as heads_lib
from tf_metagrad.networks import multi_head
from tf_metagrad.networks import params
from tf_metagrad.networks import primitives
from tf_metagrad.networks import torsos


@tf.keras.utils.register_keras_serializable(package="tf_metagrad")
class GaussianQuantileHead(params.ParamLayer):
  """Squashed-Gaussian policy and N value quantiles (continuous DrMG)."""

  def __init__(self, action_dim: int, num_quantiles: int,
               hidden_sizes: Sequence[int] = (256, 256),
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.action_dim = int(action_dim)
    self.num_quantiles = int(num_quantiles)
    self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
    self.policy = heads_lib.SquashedGaussianPolicyHead(
        self.action_dim, self.hidden_sizes, dtype=self.dtype_policy,
        name="policy")
    self.value = heads_lib.QuantileValueHead(
        self.num_quantiles, self.hidden_sizes, dtype=self.dtype_policy,
        name="value")

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    params.build_sublayer(self.policy, input_shape)
    params.build_sublayer(self.value, input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    mean, std = self.policy(inputs)
    return mean, std, self.value(inputs)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(action_dim=self.action_dim,
                  num_quantiles=self.num_quantiles,
                  hidden_sizes=self.hidden_sizes)
    return config


def _torso_kind(spec: tf.TensorSpec, choice: str) -> str:
  if choice != "auto":
    return choice
  shape = spec.shape
  if spec.dtype == tf.uint8 and shape.rank == 3:
    return "resnet" if shape[-1] == 4 else "conv"
  return "mlp"


@tf.keras.utils.register_keras_serializable(package="tf_metagrad")
class AgentNetwork(params.ParamLayer):
  """Torso + (multi-)head network of the actor-critic agents.

  Args:
    observation_shape: shape of one observation (no batch dims).
    observation_dtype: its dtype name.
    num_actions: A for discrete actions, else None.
    action_dim: A for continuous actions, else None.
    torso: "mlp", "resnet" or "conv".
    num_heads: policy/value heads (STACX: 3).
    num_quantiles: None for a scalar value, else N.
    mlp_hidden_sizes, resnet_channels, head_hidden_sizes: architecture.
    gamma_embedding_size: > 0 conditions the heads on the discount: a linear
      embedding of gamma is concatenated to the torso output (MGRL, Xu et
      al. 2018 section 1.4; STAC supplement 9.5). `call(observation, gamma)`
      then takes the gamma to condition on; None means `reference_gamma`.
    reference_gamma: the fixed gamma used when none is passed (acting, the
      outer loss).
    core_units: > 0 adds an LSTM core of that size after the torso; 0 keeps
      the network feed-forward.
    observation_leaves: for a nested observation (a dict, tuple or list of
      tensors), the `(shape, dtype)` of each leaf in `tf.nest.flatten` order.
      Each leaf is then flattened, cast and concatenated into one `[..., D]`
      vector for the MLP torso; `observation_shape` must be `(D,)`. None for
      a single-tensor observation.
  """

  def __init__(self, observation_shape: Sequence[int], observation_dtype: str,
               num_actions: Optional[int] = None,
               action_dim: Optional[int] = None, torso: str = "mlp",
               num_heads: int = 1, num_quantiles: Optional[int] = None,
               mlp_hidden_sizes: Sequence[int] = (256, 256),
               resnet_channels: Sequence[int] = (16, 32, 32),
               head_hidden_sizes: Sequence[int] = (256, 256),
               gamma_embedding_size: int = 0,
               reference_gamma: Optional[float] = None, core_units: int = 0,
               observation_leaves: Optional[
                   Sequence[Tuple[Sequence[int], str]]] = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if (num_actions is None) == (action_dim is None):
      raise ValueError("Give exactly one of num_actions (discrete) and "
                       "action_dim (continuous).")
    self.observation_shape = tuple(int(d) for d in observation_shape)
    self.observation_dtype = tf.as_dtype(observation_dtype).name
    self.observation_leaves = None
    if observation_leaves is not None:
      self.observation_leaves = tuple(
          (tuple(int(d) for d in shape), tf.as_dtype(dtype).name)
          for shape, dtype in observation_leaves)
      size = sum(int(np.prod(shape)) for shape, _ in self.observation_leaves)
      if torso != "mlp" or self.observation_shape != (size,):
        raise ValueError(
            f"A nested observation is flattened into one vector for the MLP "
            f"torso: needs torso='mlp' and observation_shape=({size},), got "
            f"torso={torso!r} and {self.observation_shape}.")
    self.num_actions = num_actions
    self.action_dim = action_dim
    self.torso_kind = torso
    self.num_heads = int(num_heads)
    self.num_quantiles = num_quantiles
    self.mlp_hidden_sizes = tuple(mlp_hidden_sizes)
    self.resnet_channels = tuple(resnet_channels)
    self.head_hidden_sizes = tuple(head_hidden_sizes)
    self.gamma_embedding_size = int(gamma_embedding_size)
    self.reference_gamma = reference_gamma
    self.core_units = int(core_units)
    if self.core_units < 0:
      raise ValueError(f"core_units must be >= 0, got {core_units}.")
    if self.gamma_embedding_size and reference_gamma is None:
      raise ValueError("A gamma-conditioned network needs reference_gamma.")
    dtype = self.dtype_policy
    self.gamma_embedding = (
        primitives.Linear(self.gamma_embedding_size, dtype=dtype,
                          name="gamma_embedding")
        if self.gamma_embedding_size else None)
    if torso == "mlp":
      self.torso = torsos.MLPTorso(self.mlp_hidden_sizes, dtype=dtype,
                                   name="torso")
    elif torso == "resnet":
      self.torso = torsos.AtariResNetTorso(self.resnet_channels, dtype=dtype,
                                           name="torso")
    elif torso == "conv":
      self.torso = torsos.ConvTorso(dtype=dtype, name="torso")
    else:
      raise ValueError(
          f"torso must be 'mlp', 'resnet' or 'conv', got {torso!r}.")
    self.core = (torsos.RecurrentCore(self.core_units, dtype=dtype,
                                      name="core")
                 if self.core_units else None)
    hidden = self.head_hidden_sizes
    if num_actions is not None and num_quantiles is None:
      head = heads_lib.PolicyValueHead(num_actions, hidden, dtype=dtype)
    elif num_actions is not None:
      head = heads_lib.PolicyQuantileHead(num_actions, num_quantiles, hidden,
                                          dtype=dtype)
    elif num_quantiles is None:
      head = heads_lib.GaussianPolicyValueHead(action_dim, hidden,
                                               dtype=dtype)
    else:
      head = GaussianQuantileHead(action_dim, num_quantiles, hidden,
                                  dtype=dtype)
    self.heads = multi_head.MultiHead(head, self.num_heads, dtype=dtype,
                                      name="heads")

  def flatten_observation(self, observation: Any) -> tf.Tensor:
    """A nested observation as one `[..., D]` tensor of the compute dtype:
    its leaves (in `tf.nest.flatten` order) flattened and concatenated."""
    leaves = tf.nest.flatten(observation)
    if len(leaves) != len(self.observation_leaves):
      raise ValueError(
          f"observation must be a nest of {len(self.observation_leaves)} "
          f"tensors shaped {[list(s) for s, _ in self.observation_leaves]}, "
          f"got {len(leaves)}.")
    parts = []
    for i, (leaf, (shape, _)) in enumerate(zip(leaves,
                                               self.observation_leaves)):
      leaf = tf.convert_to_tensor(leaf)
      rank = len(shape)
      if leaf.shape.rank is None or leaf.shape.rank < rank or tuple(
          leaf.shape[leaf.shape.rank - rank:]) != shape:
        raise ValueError(
            f"observation leaf {i} must end in shape {list(shape)}, got "
            f"{leaf.shape}.")
      size = int(np.prod(shape))
      flat = tf.reshape(tf.cast(leaf, self.compute_dtype), tf.concat(
          [tf.shape(leaf)[:leaf.shape.rank - rank], [size]], 0))
      parts.append(tf.ensure_shape(
          flat, leaf.shape[:leaf.shape.rank - rank].concatenate([size])))
    return tf.concat(parts, -1)

  def _features(self, observation):
    if self.observation_leaves is not None:
      observation = self.flatten_observation(observation)
    observation = tf.convert_to_tensor(observation)
    rank = len(self.observation_shape)
    if tuple(observation.shape[-rank:] if rank else ()) != \
        self.observation_shape:
      raise ValueError(
          f"observation must end in shape {list(self.observation_shape)}, "
          f"got {observation.shape}.")
    if self.torso_kind == "mlp":
      flat = int(np.prod(self.observation_shape)) if rank else 1
      leading = tf.shape(observation)[:tf.rank(observation) - rank]
      observation = tf.reshape(
          tf.cast(observation, self.compute_dtype),
          tf.concat([leading, [flat]], 0))
      observation = tf.ensure_shape(
          observation, observation.shape[:-1].concatenate([flat]))
    return self.torso(observation)

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    features_shape = tf.TensorShape(self.torso.compute_output_shape(
        self._torso_input_shape(input_shape)))
    params.build_sublayer(self.torso, self._torso_input_shape(input_shape))
    if self.core is not None:
      params.build_sublayer(self.core, features_shape)
      features_shape = features_shape[:-1].concatenate([self.core_units])
    if self.gamma_embedding is not None:
      params.build_sublayer(self.gamma_embedding,
                            features_shape[:-1].concatenate([1]))
      features_shape = features_shape[:-1].concatenate(
          [features_shape[-1] + self.gamma_embedding_size])
    params.build_sublayer(self.heads, features_shape)
    super().build(input_shape)

  def _torso_input_shape(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    rank = len(self.observation_shape)
    if self.torso_kind == "mlp":
      flat = int(np.prod(self.observation_shape)) if rank else 1
      return input_shape[:input_shape.rank - rank].concatenate([flat])
    return input_shape

  @property
  def recurrent(self) -> bool:
    return self.core is not None

  def initial_state(self,
                    batch_size: Union[int, tf.Tensor]) -> Tuple[tf.Tensor, ...]:
    """The acting state before an episode's first observation: a tuple of
    all-zero `[batch_size, core_units]` tensors (LSTM hidden, cell), or `()`
    for a feed-forward network."""
    if self.core is None:
      return ()
    return self._outward(tuple(self.core.initial_state(batch_size)))

  def _outward(self, nest):
    """`nest`'s floating tensors in the variable dtype (see the module
    docstring); the identity when it equals the compute dtype."""
    def cast(x):
      return tf.cast(x, self.dtype) if x.dtype.is_floating else x
    return tf.nest.map_structure(cast, nest)

  def core_state_spec(self) -> Tuple[tf.TensorSpec, ...]:
    """Per-example specs of `initial_state` (no batch dimension)."""
    if self.core is None:
      return ()
    spec = tf.TensorSpec([self.core_units], self.dtype)
    return (spec, spec)

  def _check_state(self, core_state, batch_size=None):
    state = tuple(core_state) if core_state is not None else ()
    if self.core is None:
      if tf.nest.flatten(state):
        raise ValueError("core_state was given to a feed-forward network "
                         "(core_units=0); pass () or None.")
      return None
    if len(state) != 2:
      raise ValueError(
          f"core_state must be the (hidden, cell) pair of the LSTM core, got "
          f"{len(state)} tensors.")
    state = tuple(tf.convert_to_tensor(s) for s in state)
    for s in state:
      if s.shape.rank != 2 or s.shape[-1] not in (None, self.core_units) or (
          batch_size is not None and s.shape[0] not in (None, batch_size)):
        raise ValueError(
            f"core_state tensors must have shape [B={batch_size}, "
            f"{self.core_units}], got {s.shape}.")
    return state

  def call(self, observation: Any,
           gamma: Optional[Union[float, tf.Tensor]] = None,
           core_state: Optional[Sequence[tf.Tensor]] = None,
           reset: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, ...]:
    """Outputs of every head (see the module docstring).

    Args:
      observation: `[..., *observation_shape]`; time-major `[T, B, ...]` for
        a recurrent network, whose core is unrolled over T.
      gamma: the discount to condition on (gamma-embedding networks).
      core_state: recurrent networks: the core state before observation 0
        (zeros if None); feed-forward: None or ().
      reset: recurrent networks: optional bool `[T, B]`, True where
        observation t starts a new episode (the state is zeroed before it).
    """
    features = self._features(observation)
    if self.core is not None:
      if features.shape.rank != 3:
        raise ValueError(
            "A recurrent network needs time-major observations [T, B, ...], "
            f"got features of shape {features.shape}.")
      state = None
      if core_state is not None:
        state = self._check_state(core_state, features.shape[1])
      features, _ = self.core.unroll(features, state, reset)
    else:
      self._check_state(core_state)
      if reset is not None:
        raise ValueError("reset was given to a feed-forward network.")
    return self._outward(self.heads(self._condition(features, gamma)))

  def state_after(self, observation: Any,
                  core_state: Optional[Sequence[tf.Tensor]] = None,
                  reset: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, ...]:
    """The core state after a time-major unroll `[T, B, ...]` of a recurrent
    network (arguments as in `call`); the heads are not evaluated."""
    if self.core is None:
      raise ValueError("state_after needs a recurrent network (core_units > "
                       "0).")
    features = self._features(observation)
    state = None
    if core_state is not None:
      state = self._check_state(core_state, features.shape[1])
    _, final = self.core.unroll(features, state, reset)
    return self._outward(tuple(final))

  def acting_step(
      self, observation: Any,
      core_state: Optional[Sequence[tf.Tensor]] = (),
      gamma: Optional[Union[float, tf.Tensor]] = None
  ) -> Tuple[Union[distributions.Categorical, distributions.SquashedGaussian],
             Tuple[tf.Tensor, ...]]:
    """One acting step of head 0's policy, computing only what acting needs
    (the torso, the core and head 0's policy MLP, not the value heads).

    Args:
      observation: `[B, *observation_shape]`.
      core_state: the state before `observation` (`initial_state(B)` at an
        episode start); `()` for a feed-forward network.
      gamma: the discount to condition on (gamma-embedding networks).

    Returns:
      (policy distribution, state after `observation`).
    """
    features = self._features(observation)
    state = self._check_state(core_state, features.shape[0])
    new_state = ()
    if self.core is not None:
      features, new_state = self.core.step(features, state)
      new_state = self._outward(tuple(new_state))
    features = self._condition(features, gamma)
    outputs = self._outward(self.heads.heads[0].policy(features))
    if self.num_actions is not None:
      return distributions.Categorical(outputs), new_state
    return distributions.SquashedGaussian(*outputs), new_state

  def acting_policy(
      self, observation: Any,
      gamma: Optional[Union[float, tf.Tensor]] = None
  ) -> Union[distributions.Categorical, distributions.SquashedGaussian]:
    """Head 0's policy for a feed-forward network (`acting_step` without
    state)."""
    if self.core is not None:
      raise ValueError("acting_policy has no core state; a recurrent network "
                       "acts with acting_step(observation, core_state).")
    return self.acting_step(observation, (), gamma)[0]

  def _condition(self, features, gamma):
    if self.gamma_embedding is not None:
      if gamma is None:
        gamma = self.reference_gamma
      gamma = tf.cast(gamma, features.dtype) if tf.is_tensor(gamma) else (
          tf.constant(gamma, features.dtype))
      column = tf.broadcast_to(tf.reshape(gamma, [1] * features.shape.rank),
                               tf.concat([tf.shape(features)[:-1], [1]], 0))
      features = tf.concat([features, self.gamma_embedding(column)], -1)
    elif gamma is not None:
      raise ValueError("gamma was given to a network without a gamma "
                       "embedding (gamma_embedding_size=0).")
    return features

  # ------------------------------------------------------ output accessors
  def policy(
      self, outputs: Sequence[tf.Tensor], head: int = 0,
      time_slice: slice = slice(None)
  ) -> Union[distributions.Categorical, distributions.SquashedGaussian]:
    """The policy distribution of one head, optionally sliced in time."""
    if self.num_actions is not None:
      return distributions.Categorical(outputs[0][head][time_slice])
    return distributions.SquashedGaussian(outputs[0][head][time_slice],
                                          outputs[1][head][time_slice])

  def values(self, outputs: Sequence[tf.Tensor], head: int = 0) -> tf.Tensor:
    return outputs[-1][head]

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(
        observation_shape=self.observation_shape,
        observation_dtype=self.observation_dtype,
        num_actions=self.num_actions, action_dim=self.action_dim,
        torso=self.torso_kind, num_heads=self.num_heads,
        num_quantiles=self.num_quantiles,
        mlp_hidden_sizes=self.mlp_hidden_sizes,
        resnet_channels=self.resnet_channels,
        head_hidden_sizes=self.head_hidden_sizes,
        gamma_embedding_size=self.gamma_embedding_size,
        reference_gamma=self.reference_gamma,
        core_units=self.core_units,
        observation_leaves=(None if self.observation_leaves is None else
                            [[list(shape), dtype] for shape, dtype
                             in self.observation_leaves]))
    return config


def make_network(config: config_lib.AgentConfig, observation_spec: Any,
                 action_space: gymnasium.spaces.Space) -> AgentNetwork:
  """Builds the (built) agent network for a spec, action space and config.

  `observation_spec` is a `tf.TensorSpec` or a nest of them; a nest is
  flattened into one vector for the MLP torso (see `AgentNetwork`).
  """
  leaves = tf.nest.flatten(observation_spec)
  if not leaves or not all(isinstance(l, tf.TensorSpec) for l in leaves):
    raise TypeError(
        "observation_spec must be a tf.TensorSpec or a nest of them, got "
        f"{observation_spec!r}.")
  observation_leaves = None
  if not isinstance(observation_spec, tf.TensorSpec):
    if not all(l.shape.is_fully_defined() for l in leaves):
      raise ValueError(
          f"Every leaf of a nested observation_spec needs a fully defined "
          f"shape, got {[l.shape for l in leaves]}.")
    if config.torso not in ("auto", "mlp"):
      raise ValueError(
          f"A nested observation_spec feeds the MLP torso; torso must be "
          f"'auto' or 'mlp', got {config.torso!r}.")
    observation_leaves = [(l.shape.as_list(), l.dtype.name) for l in leaves]
    size = sum(l.shape.num_elements() for l in leaves)
    observation_spec = tf.TensorSpec([size], config.dtype)
  if isinstance(action_space, gymnasium.spaces.Discrete):
    kwargs = dict(num_actions=int(action_space.n))
  elif isinstance(action_space, gymnasium.spaces.Box):
    if len(action_space.shape) != 1:
      raise ValueError(
          f"Box action spaces must be 1-D, got shape {action_space.shape}.")
    kwargs = dict(action_dim=int(action_space.shape[0]))
  else:
    raise TypeError(
        "action_space must be gymnasium.spaces.Discrete or Box, got "
        f"{type(action_space).__name__}.")
  network = AgentNetwork(
      observation_shape=observation_spec.shape.as_list(),
      observation_dtype=observation_spec.dtype.name,
      torso=_torso_kind(observation_spec, config.torso),
      num_heads=getattr(config, "num_heads", 1),
      num_quantiles=config.num_quantiles if config.distributional else None,
      mlp_hidden_sizes=config.mlp_hidden_sizes,
      resnet_channels=config.resnet_channels,
      head_hidden_sizes=config.head_hidden_sizes,
      gamma_embedding_size=(config.gamma_embedding_size
                            if getattr(config, "gamma_embedding", False)
                            else 0),
      reference_gamma=config.gamma,
      core_units=getattr(config, "core_units", 0),
      observation_leaves=observation_leaves,
      dtype=config_lib.dtype_policy(config), name="agent_network", **kwargs)
  network.build(tf.TensorShape([None]).concatenate(observation_spec.shape))
  return network
