"""`dm_env.Environment`s in the agents' conventions (DM Control's and users').

What an environment must provide to the rest of the library (see
`registry.make` and `batched.BatchedEnv`): one `tf.TensorSpec` observation
(actors stack copies with `np.stack`; the trainer feeds one tensor) and an
action space that is `Discrete` or a 1-D `Box(-1, 1)`. The adapter maps a
`dm_env` environment onto that:

  * observations: a single `specs.Array` keeps its shape; floating and bool
    dtypes become float32, integer dtypes are kept (uint8 images reach the
    convolutional torsos). A dict / list / tuple nest of arrays is
    flattened, in the nest's own order, into float32 `[D]` (DM Control's
    features layout);
  * actions: a float `BoundedArray` with finite bounds becomes
    `Box(-1, 1, [size])`, mapped affinely onto the bounds and reshaped to
    the spec's shape; a scalar integer `BoundedArray` (e.g.
    `DiscreteArray(n)`) becomes `Discrete(maximum - minimum + 1)`;
  * rewards and discounts must be scalars. With `action_repeat` R an action
    is applied for R steps and their rewards summed. A last step with
    discount 0 terminates; any other last step (a time limit, discount 1)
    truncates, so learners bootstrap through it.

Anything else (nested actions, unbounded or vector integer actions, string
observations, vector rewards) is refused when the environment is built, with
one line naming the unsupported spec.
"""

import collections.abc
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import dm_env
from dm_env import specs
import gymnasium
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from tf_metagrad.envs import seeding
from tf_metagrad.envs import spaces
from tf_metagrad.envs import user_modules

_SUPPORTED_ACTIONS = (
    "supported: one float BoundedArray with finite bounds (-> Box(-1, 1)) "
    "or one scalar integer BoundedArray / DiscreteArray (-> Discrete)")


def _describe(spec) -> str:
  """A spec on one line (numpy's repr of long bounds wraps)."""
  if not isinstance(spec, specs.Array):
    return f"a {type(spec).__name__}"
  text = f"{type(spec).__name__}(shape={spec.shape}, dtype={spec.dtype}"
  if isinstance(spec, specs.BoundedArray):
    text += (f", bounds [{np.min(spec.minimum)}, "
             f"{np.max(spec.maximum)}]")
  return text + ")"


def check_action_repeat(action_repeat: Union[int, np.integer]) -> int:
  if isinstance(action_repeat, bool) or not isinstance(
      action_repeat, (int, np.integer)) or action_repeat < 1:
    raise ValueError(f"action_repeat must be an int >= 1, got "
                     f"{action_repeat!r}.")
  return int(action_repeat)


def _observation_leaves(spec, source: str,
                        path: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
  """Paths to the `specs.Array` leaves of an observation spec, in order."""
  if isinstance(spec, specs.Array):
    return [path]
  if isinstance(spec, collections.abc.Mapping):
    items = list(spec.items())
  elif isinstance(spec, (list, tuple)):
    items = list(enumerate(spec))
  else:
    where = "/".join(map(str, path)) or "the observation"
    raise TypeError(
        f"Unsupported observation spec from {source}: {where} is a "
        f"{type(spec).__name__}; expected a dm_env.specs.Array or a "
        "dict / list / tuple of them.")
  leaves = []
  for key, child in items:
    leaves.extend(_observation_leaves(child, source, path + (key,)))
  return leaves


def _at(nest, path):
  for key in path:
    nest = nest[key]
  return nest


def _scalar_spec(spec, what: str, source: str) -> None:
  if not isinstance(spec, specs.Array) or spec.shape != ():
    raise TypeError(f"Unsupported {what} spec from {source}: "
                    f"{_describe(spec)}; only a scalar {what} (specs.Array "
                    "of shape ()) is supported.")


class DmEnvAdapter(gymnasium.Env):
  """Base of the `dm_env` adapters: spaces, action repeat, episode ends.

  Subclasses implement `_build(seed)`. The environment is built at
  construction with the seed of the first `reset()`; a `reset(seed=...)`
  with another seed rebuilds it with that seed when `reseedable` (dm_env
  has no seeding API, so a seed can only reach an environment through its
  constructor).

  Attributes:
    observation_spec: `tf.TensorSpec` of one converted observation.
    observation_space: the matching Box.
    action_space: `Box(-1, 1, [A], float32)` or `Discrete(n)`.
    action_repeat: environment steps per agent step.
    env: the underlying `dm_env.Environment`.
  """

  metadata = {"render_modes": []}
  reseedable = True

  def __init__(self, source: str, seed: Optional[int] = None,
               action_repeat: int = 1) -> None:
    """Builds the environment and derives the spaces from its specs.

    Args:
      source: names the environment in error messages.
      seed: seed of the first `reset()`; None draws one from OS entropy.
      action_repeat: environment steps per agent step (>= 1).

    Raises:
      ValueError: for a bad `action_repeat`.
      TypeError: for a spec the agents cannot use (see the module doc).
    """
    self._source = source
    self.action_repeat = check_action_repeat(action_repeat)
    self._initial_seed = (seeding.fresh_seed() if seed is None else
                          seeding.check_seed(seed))
    self.env = self._checked_build(self._initial_seed)
    # Saves rebuilding when the first reset asks for the build's own seed
    # (the batched envs always pass one).
    self._pristine_seed = self._initial_seed
    self._adapt_actions(self.env.action_spec())
    self._adapt_observations(self.env.observation_spec())
    _scalar_spec(self.env.reward_spec(), "reward", source)
    _scalar_spec(self.env.discount_spec(), "discount", source)
    self._needs_reset = True

  def _build(self, seed: int) -> dm_env.Environment:
    """The environment, built with `seed` when `reseedable`."""
    raise NotImplementedError(f"{type(self).__name__} must define _build.")

  def _checked_build(self, seed: int) -> dm_env.Environment:
    env = self._build(seed)
    if not isinstance(env, dm_env.Environment):
      raise TypeError(f"{self._source} returned a {type(env).__name__}; "
                      "expected a dm_env.Environment.")
    return env

  def _adapt_actions(self, spec) -> None:
    if not isinstance(spec, specs.Array):
      raise TypeError(f"Unsupported action spec from {self._source}: a "
                      f"{type(spec).__name__} (nested actions); "
                      f"{_SUPPORTED_ACTIONS}.")
    dtype = np.dtype(spec.dtype)
    if dtype.kind not in "iuf":
      raise TypeError(f"Unsupported action spec from {self._source}: "
                      f"{_describe(spec)} has dtype {dtype}; "
                      f"{_SUPPORTED_ACTIONS}.")
    bounded = isinstance(spec, specs.BoundedArray)
    if bounded:
      low = np.broadcast_to(np.asarray(spec.minimum, np.float64), spec.shape)
      high = np.broadcast_to(np.asarray(spec.maximum, np.float64),
                             spec.shape)
    if not (bounded and np.all(np.isfinite(low)) and
            np.all(np.isfinite(high))):
      raise TypeError(f"Unsupported action spec from {self._source}: "
                      f"{_describe(spec)} is unbounded, so it cannot be "
                      f"mapped from [-1, 1]; {_SUPPORTED_ACTIONS}.")
    self._action_shape, self._action_dtype = spec.shape, dtype
    if dtype.kind == "f":
      self._bounds = (low.reshape(-1), high.reshape(-1))
      self.action_space = spaces.unit_box((low.size,))
      return
    if int(np.prod(spec.shape)) != 1:
      raise TypeError(f"Unsupported action spec from {self._source}: "
                      f"{_describe(spec)} is a vector of integers "
                      f"(multi-discrete); {_SUPPORTED_ACTIONS}.")
    self._discrete_low = int(low.reshape(-1)[0])
    self._bounds = None
    self.action_space = gymnasium.spaces.Discrete(
        int(high.reshape(-1)[0]) - self._discrete_low + 1)

  def _adapt_observations(self, spec) -> None:
    self._leaf_paths = (None if isinstance(spec, specs.Array) else
                        _observation_leaves(spec, self._source))
    leaves = [spec] if self._leaf_paths is None else [
        _at(spec, path) for path in self._leaf_paths]
    if not leaves:
      raise TypeError(f"Unsupported observation spec from {self._source}: "
                      "an empty nest.")
    for path, leaf in zip(self._leaf_paths or [()], leaves):
      kind = np.dtype(leaf.dtype).kind
      if kind not in "biuf":
        where = "/".join(map(str, path)) or "the observation"
        raise TypeError(
            f"Unsupported observation spec from {self._source}: {where} has "
            f"dtype {leaf.dtype}; only numeric and bool arrays are "
            "supported.")
    if self._leaf_paths is None:
      dtype = np.dtype(spec.dtype)
      if dtype.kind in "bf":
        dtype = np.dtype(np.float32)
      shape = tuple(spec.shape)
    else:
      dtype = np.dtype(np.float32)
      shape = (sum(int(np.prod(leaf.shape)) for leaf in leaves),)
    self._observation_dtype, self._observation_shape = dtype, shape
    self.observation_spec = tf.TensorSpec(shape, tf.as_dtype(dtype),
                                          "observation")
    if dtype.kind == "f":
      self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape,
                                                    dtype)
    else:
      info = np.iinfo(dtype)
      self.observation_space = gymnasium.spaces.Box(info.min, info.max, shape,
                                                    dtype)

  def _observe(self, time_step) -> np.ndarray:
    observation = time_step.observation
    try:
      if self._leaf_paths is None:
        converted = np.asarray(observation, self._observation_dtype)
      else:
        converted = np.concatenate([
            np.asarray(_at(observation, path), np.float32).reshape(-1)
            for path in self._leaf_paths
        ])
      problem = (None if converted.shape == self._observation_shape else
                 f"it has shape {converted.shape} after conversion")
    except (TypeError, ValueError, KeyError, IndexError) as error:
      problem = f"{type(error).__name__}: {' '.join(str(error).split())}"
    if problem:
      raise ValueError(
          f"{self._source} emitted an observation that does not match its "
          f"observation_spec ({problem}); the spec promises "
          f"{self._observation_dtype} {self._observation_shape} after "
          "conversion.")
    return converted

  def _native_action(self, action):
    if self._bounds is None:
      native = np.asarray(self._discrete_low + int(action),
                          self._action_dtype).reshape(self._action_shape)
    else:
      native = spaces.rescale_action(action, *self._bounds).astype(
          self._action_dtype).reshape(self._action_shape)
    return native[()] if native.shape == () else native

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
            ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Starts an episode; a new `seed` rebuilds the environment with it."""
    del options  # dm_env has no reset options.
    if seed is not None:
      seed = seeding.check_seed(seed)
      if self.reseedable and seed != self._pristine_seed:
        self.env.close()
        self.env = self._checked_build(seed)
    self._pristine_seed = None
    super().reset(seed=seed)
    time_step = self.env.reset()
    self._needs_reset = False
    return self._observe(time_step), {}

  def step(self, action: npt.ArrayLike
           ) -> Tuple[np.ndarray, float, bool, bool, Dict[str, Any]]:
    """Applies the converted action for `action_repeat` steps."""
    if self._needs_reset:
      raise RuntimeError(f"{type(self).__name__}.step called before reset() "
                         "or after the episode ended; call reset() first.")
    native = self._native_action(action)
    reward = 0.0
    for _ in range(self.action_repeat):
      time_step = self.env.step(native)
      reward += float(time_step.reward or 0.0)
      if time_step.last():
        break
    # dm_env ends an episode with discount 0 at a terminal state and a
    # nonzero discount where it was merely cut (a time limit).
    terminated = bool(time_step.last() and not time_step.discount)
    truncated = bool(time_step.last() and not terminated)
    self._needs_reset = terminated or truncated
    return (self._observe(time_step), reward, terminated, truncated, {})

  def close(self) -> None:
    self.env.close()


class UserDmEnv(DmEnvAdapter):
  """`dm_env:<module>:<callable>`: the user's own `dm_env.Environment`.

  The callable is called with the `**kwargs` (from `--env_kwargs`); when it
  has a `seed` parameter it also gets each copy's seed, so batched copies
  differ and runs repeat, otherwise its randomness is its own.
  """

  def __init__(self, env_id: str, seed: Optional[int] = None,
               action_repeat: int = 1, **kwargs: Any) -> None:
    """Imports the callable and builds the environment.

    Args:
      env_id: "<module>:<callable>", e.g. "my_pkg.envs:make_corridor"; the
        callable may be a dotted attribute (a class's factory method).
      seed: seed of the first `reset()`; None draws one from OS entropy.
      action_repeat: environment steps per agent step (>= 1).
      **kwargs: passed to the callable.

    Raises:
      ValueError: if `env_id` is malformed, its module cannot be imported or
        lacks the callable.
      TypeError: if it is not callable, does not return a
        `dm_env.Environment`, or has a spec the agents cannot use.
    """
    module, attribute = user_modules.split_module(env_id)
    if not (module and attribute):
      raise ValueError(f"dm_env:{env_id} must look like "
                       "dm_env:<module>:<callable>, e.g. "
                       "dm_env:my_pkg.envs:make_corridor.")
    factory = user_modules.load_attribute(
        module, attribute, f"the dm_env environment {env_id!r}")
    if not callable(factory):
      raise TypeError(f"{env_id} is a {type(factory).__name__}, not a "
                      "callable returning a dm_env.Environment.")
    self._factory: Callable[..., dm_env.Environment] = factory
    self._kwargs = kwargs
    self.reseedable = _takes_seed(factory)
    super().__init__(env_id, seed=seed, action_repeat=action_repeat)

  def _build(self, seed: int) -> dm_env.Environment:
    if self.reseedable:
      return self._factory(seed=seed, **self._kwargs)
    return self._factory(**self._kwargs)


def _takes_seed(factory) -> bool:
  try:
    parameters = inspect.signature(factory).parameters
  except (TypeError, ValueError):  # Builtins without a signature.
    return False
  seed = parameters.get("seed")
  return seed is not None and seed.kind in (
      inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
