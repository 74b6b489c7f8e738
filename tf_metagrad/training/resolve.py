"""A run's spec and session options from a domain preset and what the user
changed (no flags here; `programs.train` maps its flags onto `resolve`).

What is derived, and how:

- the preset: the domain's (`preset`, or from the env's name) with the
  agent's changes to it (`presets.for_agent`);
- the unroll length, batch size and copies per actor: the preset's unless
  given;
- the agent config: the preset's, without its `end_learning_rate` when the
  preset keeps the learning rate constant, then the given overrides;
- the stride between an actor's items: the preset's (capped at the item
  unroll length, `runs.item_unroll_length`) unless given;
- `decay_steps` of a preset that decays its learning rate (STAC Table 3):
  the learner updates of the whole run, `presets.decay_steps`, with the new
  frames of one batch being stride x batch (as the training loop counts
  them). It is derived, so it goes to `RunSpec.derived_config`, not to the
  run's identity: a resume that asks for more env steps keeps the stored
  decay (`runs.check_or_save_spec`).
"""

from typing import Any, Mapping, Optional, Tuple

from tf_metagrad import runs
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import presets


class ConfigError(ValueError):
  """The agent config the preset and the overrides make is invalid (the
  message is the config's own)."""


def resolve(agent: str, env: str, logdir: str, total_env_steps: int, *,
            preset: str = "auto", seed: int = 0,
            config_overrides: Optional[Mapping[str, Any]] = None,
            env_kwargs: Optional[Mapping[str, Any]] = None,
            unroll_length: Optional[int] = None,
            batch_size: Optional[int] = None,
            envs_per_actor: Optional[int] = None,
            unroll_stride: Optional[int] = None,
            **other_options: Any
            ) -> Tuple[runs.RunSpec, options_lib.Options]:
  """The run spec and session options of a run (see the module docstring).

  Args:
    agent: the agent's name.
    env: the environment's name.
    logdir: the run directory.
    total_env_steps: the run's length in environment frames.
    preset: a key of `presets.PRESETS`, or "auto" (from the env's name).
    seed: the run's seed.
    config_overrides: agent config fields over the preset's.
    env_kwargs: the environment's options.
    unroll_length: T of each unroll (None: the preset's).
    batch_size: unrolls per learner step (None: the preset's).
    envs_per_actor: copies per actor (None: the preset's).
    unroll_stride: steps between an actor's items (None: the preset's).
    **other_options: the other `Options` fields.

  Returns:
    (spec, options) for `training.loop.train`.

  Raises:
    ConfigError: if the resulting agent config is invalid.
    options.OptionError: if an option is (`unroll_stride` outside [1, the
      item unroll length], or an `Options` check).
  """
  family = presets.family(env) if preset == "auto" else preset
  chosen = presets.for_agent(family, agent)
  unroll = chosen.unroll_length if unroll_length is None else unroll_length
  batch = chosen.batch_size if batch_size is None else batch_size
  config = dict(chosen.config)
  derived = {}
  if chosen.decay_learning_rate:
    # Any length validates the config; the run's is set once the stride is.
    derived["decay_steps"] = 1
  else:
    config.pop("end_learning_rate", None)
  config.update(config_overrides or {})
  spec = runs.RunSpec(agent=agent, env=env, config_overrides=config,
                      env_kwargs=dict(env_kwargs or {}), seed=seed,
                      derived_config=derived)
  try:
    item_unroll = runs.item_unroll_length(spec, unroll)
  except (ValueError, TypeError) as e:
    raise ConfigError(str(e)) from None
  stride = _stride(chosen, unroll_stride, item_unroll)
  if derived:
    derived["decay_steps"] = presets.decay_steps(
        agent, config, total_env_steps, stride * batch)
  options = options_lib.Options(
      logdir=logdir, total_env_steps=total_env_steps, unroll_length=unroll,
      batch_size=batch, unroll_stride=stride,
      envs_per_actor=(chosen.envs_per_actor if envs_per_actor is None
                      else envs_per_actor),
      preset=preset if preset != "auto" else f"auto ({family})",
      **other_options)
  return spec, options


def _stride(chosen: presets.Preset, unroll_stride: Optional[int],
            item_unroll: int) -> int:
  """`unroll_stride`, checked, or the preset's for items of `item_unroll`
  steps."""
  if unroll_stride is None:
    return chosen.stride_for(item_unroll)
  if not 1 <= unroll_stride <= item_unroll:
    raise options_lib.OptionError(
        "unroll_stride", unroll_stride,
        f"an integer in [1, {item_unroll}] (the item unroll length)")
  return unroll_stride
