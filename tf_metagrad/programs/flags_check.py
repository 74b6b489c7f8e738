"""Checks of the trainer's and actor's flags beyond ranges (those are
`programs.cli` rules): the Reverb port, the agent, its config and the
environment."""

import errno
import inspect
import socket
from typing import Any, Dict, Sequence

from tf_metagrad.programs import cli

LEARNER_SEED_MAX = 2**32 - 1  # Keras initializers reject larger seeds.
# The keys of `tf_metagrad.agents.AGENTS`, which imports TensorFlow: the
# trainer checks --agent against this while parsing, before importing it
# (tests/training/test_bad_inputs.py keeps the two equal).
AGENT_NAMES = ("drmg", "frodo", "impala", "mgrl", "stac", "stacx")


def agent_rule() -> cli.Rule:
  """The validator of an --agent flag: one of `AGENT_NAMES` (None passes:
  the flag was not given)."""
  return (lambda v: v is None or v in AGENT_NAMES,
          f"expected one of {', '.join(AGENT_NAMES)}")


def free_port(flag: str, port: int) -> None:
  """Checks that nothing listens on `port`, on any interface.

  Reverb's server listens on all interfaces and, when the port is taken,
  fails with a gRPC traceback after the run directory exists.

  Raises:
    tf_metagrad.programs.cli.FlagError: if the port is taken or privileged.
  """
  for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    try:
      probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # No IPv6 on this host.
      continue
    with probe:
      # As gRPC does: a port left in TIME_WAIT by an earlier run is free.
      probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        probe.bind((host, port))
      except OSError as e:
        if e.errno == errno.EADDRINUSE:
          raise cli.FlagError(
              f"--{flag}={port}: the port is in use; expected a free port "
              "(leave it unset to get one)") from None
        if e.errno == errno.EACCES:
          raise cli.FlagError(
              f"--{flag}={port}: not allowed to listen there "
              f"({e.strerror}); expected a port >= 1024") from None
        # Anything else (e.g. no IPv6 address) is Reverb's to report.


def config_overrides(agent: str,
                     config_items: Sequence[str]) -> Dict[str, Any]:
  """Checks --agent and parses --config; returns the overrides.

  Parsing checks the names and types. Whether the values make a valid
  config depends on what the program adds to them (a preset's values, the
  learner's), so that is checked there; `config_error` names --config in
  its error.

  Args:
    agent: the --agent value.
    config_items: the --config name=value entries.

  Raises:
    tf_metagrad.programs.cli.FlagError: naming --agent or --config.
  """
  # pylint: disable=g-import-not-at-top
  from tf_metagrad import agents
  from tf_metagrad.programs import overrides
  # pylint: enable=g-import-not-at-top
  if agent not in agents.AGENTS:
    raise cli.FlagError(f"--agent={agent}: expected one of "
                        f"{', '.join(sorted(agents.AGENTS))}")
  try:
    return overrides.parse_config(agent, config_items)
  except (ValueError, TypeError) as e:
    raise config_error(config_items, e) from None


def config_error(config_items: Sequence[str],
                 error: BaseException) -> cli.FlagError:
  """The error of an invalid agent config made with the --config entries
  `config_items`, naming them."""
  shown = " ".join(f"--config={item}" for item in config_items)
  return cli.FlagError(cli.naming(shown or "--config", error))


def _env_options(env) -> str:
  """The keyword options of `env`'s class, for a message."""
  base = getattr(env, "unwrapped", env)
  # The name (game, domain, task, Gymnasium id) and seed are set elsewhere.
  fixed = {"self", "seed", "game", "domain", "task", "pixels", "env_id"}
  names, open_ended = [], False
  for p in inspect.signature(type(base).__init__).parameters.values():
    if p.kind is p.VAR_KEYWORD:
      open_ended = True
    elif p.name not in fixed and p.kind is not p.VAR_POSITIONAL:
      names.append(p.name)
  text = ", ".join(names) if names else "none"
  if open_ended:
    text += " (and whatever the underlying environment accepts)"
  return text


def environment(env: str, env_kwargs_items: Sequence[str],
                seed: int) -> Dict[str, Any]:
  """Checks --env and --env_kwargs by building the environment once.

  Returns:
    The parsed --env_kwargs.

  Raises:
    tf_metagrad.programs.cli.FlagError: naming --env or --env_kwargs (with
      the valid options).
  """
  # pylint: disable=g-import-not-at-top
  from tf_metagrad import envs
  from tf_metagrad.programs import overrides
  # pylint: enable=g-import-not-at-top
  shown = " ".join(f"--env_kwargs={item}" for item in env_kwargs_items)
  try:
    env_kwargs = overrides.parse_env_kwargs(env_kwargs_items)
  except ValueError as e:
    raise cli.FlagError(cli.naming(shown, e)) from None
  try:
    envs.make(env, seed=seed, **env_kwargs).close()
    return env_kwargs
  except (ValueError, TypeError) as e:
    error = e
  # Without the kwargs: tells a bad name from a bad option.
  try:
    plain = envs.make(env, seed=seed)
  except (ValueError, TypeError) as e:
    raise cli.FlagError(cli.naming(f"--env={env}", e)) from None
  try:
    options = _env_options(plain)
  finally:
    plain.close()
  raise cli.FlagError(f"{shown or '--env_kwargs'}: {cli.one_line(error)} "
                      f"(options of {env}: {options})")
