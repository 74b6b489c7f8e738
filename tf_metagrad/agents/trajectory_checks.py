"""Checks of a `types.Trajectory` where it enters a learner.

A learner's losses cast whatever they are given, so a batch with the wrong
dtype, layout or range (a boolean `terminated` passed as `discount`, integer
rewards, actions outside the action space) used to train on garbage without
complaint. `check_trajectory` rejects such a batch with one line naming the
field, what it must be and what it is.

Two levels, so that checking costs nothing in training:

- dtypes, ranks and static shapes (T and B consistent across the fields,
  T+1 observations, the observation shape of the network, the recurrent
  state) are checked in Python whenever the check runs: on eager tensors,
  and at trace time on symbolic tensors and `tf.TensorSpec`s, where the
  static shapes are known;
- value ranges (discount in [0, 1], mask 0 or 1 with discount 0 wherever
  it is 0 (a padding step ends the truncated episode, see
  `types.Trajectory.mask`), actions inside the action space,
  discrete log-probabilities <= 0) are checked only on concrete values
  (eager tensors, NumPy arrays): inside a `tf.function` they would need
  graph asserts that run every step. NaNs are let through: a non-finite
  batch is the learner's to skip (`Learner.skipped_updates`).
"""

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_metagrad import types
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.ops import _checks

# A log-probability computed as log(p) from a float32 probability may exceed
# 0 by a few units of float32 rounding (p rounded up to just above 1).
_LOG_PROB_SLACK = 1e-5


def _leaf(value):
  """`value` as something with a static `shape` and `dtype`."""
  if isinstance(value, (tf.TensorSpec, np.ndarray)) or tf.is_tensor(value):
    return value
  return tf.convert_to_tensor(value)


def _dtype(value) -> tf.DType:
  return tf.as_dtype(value.dtype)


def _shape(value) -> tf.TensorShape:
  return tf.TensorShape(value.shape)


def _concrete(value) -> Optional[np.ndarray]:
  """The values of `value` when they are at hand without running a graph."""
  if isinstance(value, np.ndarray):
    return value
  if (tf.executing_eagerly() and tf.is_tensor(value)
      and not tf.is_symbolic_tensor(value)):
    return value.numpy()
  return None


def _range_str(values: np.ndarray) -> str:
  finite = values[np.isfinite(values)] if values.dtype.kind == 'f' else values
  if finite.size == 0:
    return 'no finite values'
  return f'min {finite.min():g}, max {finite.max():g}'


class _Checker:
  """Checks one trajectory against a network; see `check_trajectory`."""

  def __init__(self, name: str, network):
    self.name = name
    self.network = network
    self.t: Optional[int] = None
    self.b: Optional[int] = None
    self.reference: Optional[str] = None  # the field T and B were read off

  def field(self, field: str) -> str:
    return f'{self.name}.{field}'

  def per_step(self, field: str, value, description: str, kind: str,
               trailing: Sequence[Tuple[str, Optional[int]]] = ()):
    """Checks a `[T, B, *trailing]` field of dtype `kind`; returns it."""
    value = _leaf(value)
    dtype = _dtype(value)
    ok = {'floating': dtype.is_floating,
          'integer': dtype.is_integer}[kind]
    if not ok:
      raise TypeError(f'{self.field(field)} must be {description}, got '
                      f'dtype {dtype.name}.')
    dims = [('T', self.t), ('B', self.b)] + list(trailing)
    shape = _shape(value)
    if not _checks.matches(shape, dims):
      raise ValueError(
          f'{self.field(field)} must be {description}, got shape '
          f'{_checks.shape_str(shape)}{self._where(dims)}.')
    if self.reference is None:
      self.t = tf.compat.dimension_value(shape[0])
      self.b = tf.compat.dimension_value(shape[1])
      self.reference = field
    return value

  def _where(self, dims) -> str:
    """What the expected sizes are and where T and B come from."""
    if self.reference is None:
      return ''
    return (f' where {_checks.format_dims(dims)} (T, B read off '
            f'{self.field(self.reference)})')

  def observation(self, observation):
    network = self.network
    t_plus_1 = None if self.t is None else self.t + 1
    if network.observation_leaves is None:
      leaves = [(observation, network.observation_shape, 'observation')]
    else:
      flat = tf.nest.flatten(observation)
      if len(flat) != len(network.observation_leaves):
        raise ValueError(
            f'{self.field("observation")} must be a nest of '
            f'{len(network.observation_leaves)} tensors (the network\'s '
            f'observation spec), got {len(flat)}.')
      leaves = [(leaf, shape, f'observation leaf {i}') for i, (leaf, (
          shape, _)) in enumerate(zip(flat, network.observation_leaves))]
    for value, obs_shape, label in leaves:
      value = _leaf(value)
      dtype = _dtype(value)
      described = ('a numeric tensor ['
                   + ', '.join(['T+1', 'B'] + [str(d) for d in obs_shape])
                   + ']')
      if dtype == tf.bool or dtype == tf.string:
        raise TypeError(f'{self.name}.{label} must be {described}, got dtype '
                        f'{dtype.name}.')
      dims = ([('T+1', t_plus_1), ('B', self.b)]
              + [(str(d), d) for d in obs_shape])
      shape = _shape(value)
      if not _checks.matches(shape, dims):
        raise ValueError(
            f'{self.name}.{label} must be {described}, got shape '
            f'{_checks.shape_str(shape)}{self._where(dims)}.')

  def core_state(self, core_state):
    network = self.network
    leaves = tf.nest.flatten(core_state) if core_state is not None else []
    if not network.recurrent:
      if leaves:
        raise ValueError(
            f'{self.field("core_state")} must be () for a feed-forward '
            f'network (core_units=0), got {len(leaves)} tensors.')
      return
    units = network.core_units
    expected = (f'the (hidden, cell) LSTM state before observation 0, two '
                f'floating tensors [B, {units}] (e.g. '
                f'network.initial_state(B) at episode starts)')
    if len(leaves) != 2:
      raise ValueError(f'{self.field("core_state")} must be {expected}, got '
                       f'{len(leaves)} tensors.')
    for value in leaves:
      value = _leaf(value)
      dtype = _dtype(value)
      if not dtype.is_floating:
        raise TypeError(f'{self.field("core_state")} must be {expected}, got '
                        f'dtype {dtype.name}.')
      dims = [('B', self.b), ('units', units)]
      if not _checks.matches(_shape(value), dims):
        raise ValueError(
            f'{self.field("core_state")} must be {expected}, got shape '
            f'{_checks.shape_str(_shape(value))}{self._where(dims)}.')


def _check_values(checker: _Checker, network, discount, action,
                  behaviour_log_prob, mask) -> None:
  values = _concrete(discount)
  if values is not None and np.any((values < 0) | (values > 1)):
    raise ValueError(f'{checker.field("discount")} must have values in '
                     f'[0, 1], got {_range_str(values)}.')
  masks = None if mask is None else _concrete(mask)
  if masks is not None:
    if np.any((masks != 0) & (masks != 1)):
      raise ValueError(f'{checker.field("mask")} must have values 0 '
                       f'(padding step) or 1, got {_range_str(masks)}.')
    if values is not None and np.any((masks == 0) & (values != 0)):
      raise ValueError(f'{checker.field("discount")} must be 0 where '
                       f'{checker.field("mask")} is 0 (a padding step ends '
                       f'the truncated episode).')
  values = _concrete(action)
  if values is not None and values.size:
    if network.num_actions is not None:
      n = network.num_actions
      if np.any((values < 0) | (values >= n)):
        raise ValueError(f'{checker.field("action")} must have values in '
                         f'[0, {n}) for Discrete({n}), got '
                         f'{_range_str(values)}.')
    elif np.any(np.abs(values) > 1):
      raise ValueError(f'{checker.field("action")} must have values in '
                       f'[-1, 1] (squashed Box actions), got '
                       f'{_range_str(values)}.')
  values = _concrete(behaviour_log_prob)
  if (network.num_actions is not None and values is not None
      and np.any(values > _LOG_PROB_SLACK)):
    raise ValueError(f'{checker.field("behaviour_log_prob")} must be <= 0 '
                     f'(log-probabilities of discrete actions), got '
                     f'{_range_str(values)}.')


def check_trajectory(trajectory: Any, network: networks_lib.AgentNetwork,
                     name: str = 'batch') -> None:
  """Raises unless `trajectory` is a batch `network` can learn from.

  See the module docstring for what is checked when.

  Args:
    trajectory: a `types.Trajectory` of tensors, NumPy arrays or
      `tf.TensorSpec`s (one replica's part of a distributed batch).
    network: the learner's `agents.networks.AgentNetwork`.
    name: how error messages call the trajectory (the argument's name).

  Raises:
    TypeError: `trajectory` is not a `Trajectory`, or a field has the wrong
      dtype (e.g. a bool discount, integer rewards, float discrete actions).
    ValueError: a field has the wrong rank or shape (T and B must agree
      across fields, observations have T+1 steps), the recurrent state is
      missing or extra, or a concrete value is out of range.
  """
  if not isinstance(trajectory, types.Trajectory):
    raise TypeError(f'{name} must be a tf_metagrad.types.Trajectory, got '
                    f'{type(trajectory).__name__}.')
  checker = _Checker(name, network)
  checker.per_step('reward', trajectory.reward, 'a floating tensor [T, B]',
                   'floating')
  discount = checker.per_step(
      'discount', trajectory.discount,
      'a floating tensor [T, B] with values in [0, 1]', 'floating')
  discrete = network.num_actions is not None
  behaviour_log_prob = checker.per_step(
      'behaviour_log_prob', trajectory.behaviour_log_prob,
      'a floating tensor [T, B] of log mu(a_t | x_t)'
      + (' (<= 0 for discrete actions)' if discrete else ''), 'floating')
  if discrete:
    action = checker.per_step(
        'action', trajectory.action,
        f'an integer tensor [T, B] with values in '
        f'[0, {network.num_actions})', 'integer')
  else:
    dim = int(network.action_dim)
    action = checker.per_step(
        'action', trajectory.action,
        f'a floating tensor [T, B, {dim}] with values in [-1, 1]',
        'floating', trailing=[('A', dim)])
  mask = types.step_mask(trajectory)
  if mask is not None:
    mask = checker.per_step(
        'mask', mask, '() or a floating tensor [T, B] of 0 (padding step) '
        'and 1', 'floating')
  checker.observation(trajectory.observation)
  checker.core_state(trajectory.core_state)
  _check_values(checker, network, discount, action, behaviour_log_prob, mask)


def check_batches(batches: Any, network: networks_lib.AgentNetwork,
                  name: str) -> None:
  """`check_trajectory` on a trajectory or on each of a list of them."""
  if isinstance(batches, (list, tuple)) and not isinstance(
      batches, types.Trajectory):
    for i, batch in enumerate(batches):
      check_trajectory(batch, network, f'{name}[{i}]')
  else:
    check_trajectory(batches, network, name)


def local_batches(strategy: tf.distribute.Strategy, batch: Any) -> List[Any]:
  """The per-replica parts of a (possibly distributed) batch on this host."""
  leaves = tf.nest.flatten(batch)
  if not any(isinstance(x, tf.distribute.DistributedValues) for x in leaves):
    return [batch]
  parts = [strategy.experimental_local_results(x) for x in leaves]
  count = max(len(p) for p in parts)
  return [tf.nest.pack_sequence_as(
      batch, [p[i] if len(p) == count else p[0] for p in parts])
          for i in range(count)]
