"""`make` / `make_batched`: one entry point for every environment family."""

from typing import Any, Callable, Dict, Optional, Tuple

import gymnasium

from tf_metagrad.envs import batched
from tf_metagrad.envs import catch
from tf_metagrad.envs import random_walk
from tf_metagrad.envs import time_limit
from tf_metagrad.envs import toy
from tf_metagrad.envs import two_colors
from tf_metagrad.envs import user_modules

_TOY: Dict[str, Tuple[type, type]] = {
    "catch": (catch.CatchEnv, catch.CatchCore),
    "random_walk": (random_walk.RandomWalkEnv, random_walk.RandomWalkCore),
    "two_colors": (two_colors.TwoColorsEnv, two_colors.TwoColorsCore),
    "time_limit": (time_limit.TimeLimitEnv, time_limit.TimeLimitCore),
}

VALID_NAMES: Tuple[str, ...] = (
    "catch",
    "random_walk",
    "two_colors",
    "time_limit",
    "atari:<Game> (e.g. atari:Pong, atari:SpaceInvaders)",
    "dmc:<domain>-<task> (features, e.g. dmc:cartpole-swingup)",
    "dmc_pixels:<domain>-<task> (84x84 RGB, e.g. dmc_pixels:walker-walk)",
    "gym:<id> (any registered Gymnasium id, e.g. gym:CartPole-v1; "
    "gym:<module>:<id> imports <module>, which registers <id>, first)",
    "dm_env:<module>:<callable> (a callable returning a dm_env.Environment, "
    "e.g. dm_env:my_pkg.envs:make_env; --env_kwargs go to the callable)",
)


def _unknown(name) -> ValueError:
  return ValueError(f"Unknown environment name {name!r}; valid names are: "
                    f"{'; '.join(VALID_NAMES)}.")


# Families whose members are chosen among what tf_metagrad and its pinned
# dependencies ship (ALE ROMs, the DM Control suite): their names import
# nothing that the name itself picks.
_BUILT_IN_FAMILIES = ("atari", "dmc", "dmc_pixels")


def _split_family(name: str) -> Tuple[str, str]:
  """(family, rest) of "<family>:<rest>"; a toy name is its own family."""
  if not isinstance(name, str):
    raise TypeError(f"name must be a string, got {type(name).__name__} "
                    f"{name!r}; valid names are: {'; '.join(VALID_NAMES)}.")
  if name in _TOY:
    return name, ""
  family, colon, rest = name.partition(":")
  if not colon or not rest or family in _TOY:
    raise _unknown(name)
  return family, rest


def imports_user_code(name: str) -> bool:
  """Whether building environment `name` imports a module the name picks.

  Such a name runs whatever code its module holds (`dm_env:subprocess:
  check_call` runs a command with the env_kwargs), so a process must build
  it only when the name came from someone it trusts to run code on it
  (`trainers.actor` refuses one read from a server unless its own command
  line names it). Only names of the toy domains, `atari:`, `dmc:`,
  `dmc_pixels:` and `gym:<registered id>` (no module part) are False: a name
  this registry does not know is True, so that a family added later is held
  back until it is classified here.

  Args:
    name: an environment name, as for `make`; not imported or built.

  Returns:
    True for `dm_env:<module>:<callable>`, `gym:<module>:<id>` and any name
    that is not one of the built-in forms.
  """
  try:
    family, rest = _split_family(name)
  except (TypeError, ValueError):
    return True
  if family in _TOY or family in _BUILT_IN_FAMILIES:
    return False
  if family == "gym":
    return user_modules.split_module(rest)[0] is not None
  return True


def _split_dmc(name: str, rest: str) -> Tuple[str, str]:
  domain, dash, task = rest.partition("-")
  if not (domain and dash and task):
    raise ValueError(f"{name!r} must look like dmc:<domain>-<task>, e.g. "
                     "dmc:cartpole-swingup.")
  return domain, task


def _single_factory(name: str, kwargs) -> Callable[[Optional[int]],
                                                    gymnasium.Env]:
  """Parses `name` and returns seed -> environment."""
  family, rest = _split_family(name)
  if family in _TOY:
    env_class = _TOY[family][0]
    return lambda seed: env_class(seed=seed, **kwargs)
  if family == "atari":
    from tf_metagrad.envs import atari  # pylint: disable=g-import-not-at-top
    return lambda seed: atari.AtariEnv(rest, seed=seed, **kwargs)
  if family in ("dmc", "dmc_pixels"):
    from tf_metagrad.envs import dmc  # pylint: disable=g-import-not-at-top
    domain, task = _split_dmc(name, rest)
    pixels = family == "dmc_pixels"
    return lambda seed: dmc.DMCEnv(domain, task, seed=seed, pixels=pixels,
                                   **kwargs)
  if family == "gym":
    from tf_metagrad.envs import gym_env  # pylint: disable=g-import-not-at-top
    return lambda seed: gym_env.GymEnv(rest, seed=seed, **kwargs)
  if family == "dm_env":
    # pylint: disable-next=g-import-not-at-top
    from tf_metagrad.envs import dm_env_adapter
    return lambda seed: dm_env_adapter.UserDmEnv(rest, seed=seed, **kwargs)
  raise _unknown(name)


def make(name: str, seed: Optional[int] = None,
         **kwargs: Any) -> gymnasium.Env:
  """Builds one environment.

  Args:
    name: one of `VALID_NAMES`.
    seed: seed of the first `reset()` (None draws one from OS entropy).
    **kwargs: the family's options, e.g. `rows=6` for catch, `noop_max=0`
      for atari, `action_repeat=2` for dmc and dm_env; for gym and dm_env
      the rest go to `gymnasium.make` / the user's callable.

  Returns:
    A `gymnasium.Env` with `observation_spec` (`tf.TensorSpec`, no batch
    dimension) and `action_space` (`Discrete` or `Box(-1, 1)`).

  Raises:
    ValueError: for an unknown name (the message lists the valid ones), a
      bad option, or a user module that cannot be imported or does not
      provide what the name says; TypeError for a non-string name or a user
      environment whose spaces/specs the agents cannot use.
  """
  return _single_factory(name, kwargs)(seed)


def make_batched(name: str, num_envs: int, seed: Optional[int] = None,
                 pad_truncations: bool = False,
                 **kwargs: Any) -> batched.BatchedEnv:
  """Builds K copies stepped together with auto-reset.

  Copy i uses `derive_seed(seed, i)` and equals
  `make(name, seed=derive_seed(seed, i), **kwargs)` step for step. Toy
  domains are vectorised over K in numpy; other families loop over K single
  environments.

  Args:
    name: one of `VALID_NAMES`.
    num_envs: K >= 1.
    seed: batch seed (None draws one from OS entropy).
    pad_truncations: hold a truncated copy for one padding step that keeps
      its final observation (`BatchedEnv.pad_truncations`, what the actors
      use so that time limits bootstrap).
    **kwargs: as for `make`.

  Returns:
    A `BatchedEnv`.

  Raises:
    ValueError / TypeError: as for `make`, or for a bad `num_envs`.
  """
  num_envs = batched.check_num_envs(num_envs)
  factory = _single_factory(name, kwargs)
  if name in _TOY:
    core = _TOY[name][1](num_envs=num_envs, **kwargs)
    env = toy.ToyBatchedEnv(core, seed=seed)
  else:
    env = batched.LoopBatchedEnv(factory, num_envs, seed=seed)
  env.pad_truncations = bool(pad_truncations)
  return env
