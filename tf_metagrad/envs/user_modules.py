"""Imports of the user's own environment modules, with one-line errors.

`gym:<module>:<id>` and `dm_env:<module>:<callable>` name a module that is
imported before the environment is built, as `gymnasium.make("module:id")`
does. A failed import must stop a trainer with one line on stderr, so every
failure becomes a ValueError whose message is a single line.

Importing a module runs its code, so `split_module` is also what
`registry.imports_user_code` asks: the name, not the caller, decides what
runs.
"""

import importlib
import types
from typing import Any, Optional, Tuple


def _one_line(error: BaseException) -> str:
  text = "; ".join(line.strip() for line in str(error).splitlines()
                   if line.strip())
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _path_hint(module: str, error: BaseException) -> str:
  """How to make `module` importable, when Python found no trace of it.

  Only when its top-level package is what is missing: a module that is
  found but fails inside (a missing dependency, a bug) needs another fix.
  """
  top = module.split(".")[0]
  if not isinstance(error, ModuleNotFoundError) or error.name != top:
    return ""
  return (f"; to make it importable, run from the folder that holds {top}/ "
          f"or {top}.py, or add that folder to PYTHONPATH")


def split_module(reference: str) -> Tuple[Optional[str], str]:
  """("<module>", "<rest>") of "<module>:<rest>", (None, reference) without
  a colon.

  The one parser of the module part: the environments that import it and
  the check of whether a name imports code must not disagree on it. A
  colon with nothing before it still counts as a module part (None only
  without a colon), so that it fails as a bad module path.

  Args:
    reference: what follows "gym:" or "dm_env:" in an environment name.

  Returns:
    (module or None, the rest).
  """
  module, colon, rest = reference.partition(":")
  return (module, rest) if colon else (None, reference)


def import_module(module: str, purpose: str) -> types.ModuleType:
  """Imports `module` on behalf of `purpose` (e.g. "Gymnasium id 'X-v0'").

  Args:
    module: a dotted module path.
    purpose: what the module is needed for, quoted in the error.

  Returns:
    The module.

  Raises:
    ValueError: naming the module and the import's own error, on one line.
  """
  if not module or any(not part.isidentifier() for part in module.split(".")):
    raise ValueError(f"{module!r} is not a module path (e.g. my_pkg.envs); "
                     f"it names the module that provides {purpose}.")
  try:
    return importlib.import_module(module)
  except Exception as error:  # pylint: disable=broad-except
    # The user's module runs arbitrary code on import; whatever it raises
    # means the same thing to us: the named environment cannot be built.
    raise ValueError(f"Cannot import module {module!r} for {purpose} "
                     f"({_one_line(error)}){_path_hint(module, error)}."
                     ) from error


def load_attribute(module: str, attribute: str, purpose: str) -> Any:
  """`module.attribute` (dotted attributes allowed), imported for `purpose`.

  Raises:
    ValueError: if the module cannot be imported or lacks the attribute.
  """
  value = import_module(module, purpose)
  for part in attribute.split("."):
    if not hasattr(value, part):
      raise ValueError(f"Module {module!r} has no attribute {attribute!r} "
                       f"(needed for {purpose}).")
    value = getattr(value, part)
  return value
