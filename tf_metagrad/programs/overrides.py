"""Parsing `--config name=value` and `--env_kwargs name=value` flags.

Values are parsed against the agent config dataclass field's default type,
so every config field can be overridden from the command line with a clear
error for unknown names or unparsable values.
"""

import ast
import dataclasses
import typing
from typing import Any, Dict, Sequence

_BOOLS = ("true", "false", "1", "0")


def _parse_literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _split(item: str, flag: str):
  if "=" not in item:
    raise ValueError(f"--{flag} entries must look like name=value, got "
                     f"{item!r}.")
  name, value = item.split("=", 1)
  return name.strip(), value.strip()


def parse_config(agent: str, items: Sequence[str]) -> Dict[str, Any]:
  """`["gamma=0.99", "meta_learned=gamma,lambda_"]` -> typed overrides."""
  # Here, not at the top: `agents` imports TensorFlow, which
  # parse_env_kwargs (evaluate's flag check) must not.
  from tf_metagrad import agents  # pylint: disable=g-import-not-at-top
  if agent not in agents.AGENTS:
    raise ValueError(f"Unknown agent {agent!r}; allowed: "
                     f"{sorted(agents.AGENTS)}.")
  config_cls = agents.AGENTS[agent][0]
  defaults = {f.name: (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory())
              for f in dataclasses.fields(config_cls)}
  hints = typing.get_type_hints(config_cls)
  out = {}
  for item in items or ():
    name, text = _split(item, "config")
    if name not in defaults:
      raise ValueError(
          f"--config {name}: unknown field for agent {agent!r}; allowed: "
          f"{sorted(defaults)}.")
    default = defaults[name]
    if text.lower() == "none":
      value = None
    elif hints[name] == typing.Union[bool, str] and text.lower() in _BOOLS:
      value = text.lower() in ("true", "1")
    elif isinstance(default, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"--config {name}: expected true/false, got {text!r}.")
      value = text.lower() in ("true", "1")
    elif isinstance(default, tuple):
      parts = [p for p in text.strip("()[]").split(",") if p.strip()]
      value = tuple(_parse_literal(p.strip()) for p in parts)
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
      try:
        value = type(default)(float(text)) if isinstance(default, float) \
            else int(text)
      except ValueError:
        raise ValueError(
            f"--config {name}: expected a {type(default).__name__}, got "
            f"{text!r}.") from None
    else:
      value = _parse_literal(text)
    out[name] = value
  return out


def parse_env_kwargs(items: Sequence[str]) -> Dict[str, Any]:
  out = {}
  for item in items or ():
    name, text = _split(item, "env_kwargs")
    out[name] = _parse_literal(text)
  return out
