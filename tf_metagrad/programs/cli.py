"""Command-line conventions of the programs of `tf_metagrad.programs`
(train, actor, plot, export, evaluate).

A rejected command line ends with one line on stderr that names the flag,
its value and what is expected, exit code 1, and nothing written. Range
checks are absl validators (`register`), so they run while the flags are
parsed; nothing here imports TensorFlow, and the programs import it (with
the library) only once their flags have passed, so that a rejection is
quick. `run` replaces `absl.app.run` to print parse and usage errors as
that one line.

This module defines no flags at import (`run` adds `--native_logs` and
`--version` to the program it runs).
"""

import math
import os
import re
import sys
import tempfile
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags

from tf_metagrad import version
from tf_metagrad.system import native_logs

HELP_HINT = "(--helpfull lists every flag)"
SEED_MAX = 2**63 - 1  # Seeds end up in int64 stateless-random seeds.


class FlagError(ValueError):
  """A flag value the program cannot run with; the message names the flag."""


Rule = Tuple[Callable[[Any], bool], str]


def integer(minimum: int, maximum: Optional[int] = None,
            unset: Optional[str] = None) -> Rule:
  """A rule: an integer in [minimum, maximum]; None passes (flag not given).

  Args:
    minimum: least value.
    maximum: largest value (None: no bound).
    unset: what leaving the flag out means, added to the message.
  """
  expected = (f"an integer >= {minimum}" if maximum is None else
              f"an integer in [{minimum}, {maximum}]")
  if unset:
    expected += f" (leave it unset for {unset})"
  return (lambda v: v is None or (v >= minimum and
                                  (maximum is None or v <= maximum)),
          f"expected {expected}")


def number(minimum: float, inclusive: bool = True, allow_inf: bool = False,
           unset: Optional[str] = None) -> Rule:
  """A rule: a float >= (or >) minimum, never NaN; None passes."""
  expected = f"a number {'>=' if inclusive else '>'} {minimum:g}"
  expected += " (inf: never)" if allow_inf else ", finite"
  if unset:
    expected += f" (leave it unset for {unset})"

  def check(value):
    if value is None:
      return True
    # NaN fails every comparison, so an unchecked NaN interval would mean
    # "never" without anyone asking for it.
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
      return False
    return value >= minimum if inclusive else value > minimum

  return check, f"expected {expected}"


def register(rules: Dict[str, Rule],
             flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Registers each rule as the absl validator of the flag it is keyed by."""
  for name, (check, message) in rules.items():
    flags.register_validator(name, check, message, flag_values=flag_values)


def one_line(error: BaseException) -> str:
  """The error's message on one line (absl's can span several)."""
  # absl writes "flag --name=value: ..."; the other errors start at "--".
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  lines = [line[len("flag "):] if line.startswith("flag --") else line
           for line in lines]
  return "; ".join(lines) or type(error).__name__


def naming(shown: str, error: BaseException) -> str:
  """`error`'s line, prefixed by the flags `shown` unless it names one."""
  text = one_line(error)
  return text if text.startswith("--") else f"{shown}: {text}"


def is_url(path: str) -> bool:
  """True for a URL (gs://, ram://, file://...): `runs.is_local`'s test,
  here because `runs` imports TensorFlow."""
  return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


def writable_dir(flag: str, path: str) -> None:
  """Checks that `path` is a directory, or can be created as one, and that
  files can be written in it.

  A URL (gs://, ram://, file://...) is not checked: that needs
  TensorFlow's file systems (and maybe credentials and the network), which
  this check runs before; the program's first write through `tf.io.gfile`
  reports what is wrong with it.

  Args:
    flag: the flag's name (for the message).
    path: the directory.

  Raises:
    FlagError: if `path` is a file or a broken symlink, lies under a
      file, or the nearest existing directory refuses new files.
  """
  if is_url(path):
    return
  target = os.path.abspath(path)
  existing = target
  while not os.path.exists(existing):
    if os.path.lexists(existing):
      raise FlagError(f"--{flag}={path}: {existing} is a broken symlink; "
                      "expected a directory or a path that can become one")
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    if existing == target:
      raise FlagError(f"--{flag}={path}: names an existing file; expected a "
                      "directory")
    raise FlagError(f"--{flag}={path}: {existing} is a file, so no "
                    "directory can be created under it")
  # os.access says yes to root on any directory, so try a file, one that
  # has no name (O_TMPFILE) and so cannot be left behind.
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise FlagError(f"--{flag}={path}: cannot write in {existing} "
                    f"({e.strerror or type(e).__name__}); expected a "
                    "writable directory") from None


def exit_if_version_asked(argv: Sequence[str]) -> None:
  """Prints `tf_metagrad.version.describe()` and exits 0 if `argv` (a
  program's, its name first) holds --version.

  Looked for before the flags are parsed, so that a bad value elsewhere on
  the line does not hide the version.
  """
  if "--version" in argv[1:]:
    print(version.describe(), flush=True)
    sys.exit(0)


def run(main: Callable[[Sequence[str]], int], prefix: str = "error: ") -> None:
  """`app.run(main)`, with usage errors as one line on stderr and exit 1.

  absl would print its whole flag help (about 100 lines) above the one line
  that says what is wrong; here the line stands alone, with a pointer to
  --helpfull. Parse errors (a validator, a malformed or unknown flag) and
  `app.UsageError` / `FlagError` raised by `main` are handled alike.
  Defines `--native_logs` (see `native_logs`) and `--version` (prints
  `tf_metagrad.version.describe()` and exits 0, whatever the other flags
  say) for the program it runs.

  Args:
    main: the program's main(argv), returning its exit code.
    prefix: starts the error line, e.g. "error: ".
  """

  if "native_logs" not in flags.FLAGS:
    flags.DEFINE_enum(
        "native_logs", "quiet", ["quiet", "all"],
        "quiet: hide the known noise of TensorFlow's and Reverb's C++ logs "
        "(CUDA factory lines on CPU machines, Reverb start-up lines) and "
        "TensorFlow's INFO/WARNING lines; all: show everything.")
  if "version" not in flags.FLAGS:
    flags.DEFINE_bool("version", False, "Print the tf_metagrad version and "
                      "git commit (where known), and exit.")

  # absl's --help lists the flags of the module named by sys.argv[0]; a
  # console script or a checkout launcher is not the module defining them.
  for flag in flags.FLAGS.get_key_flags_for_module(main.__module__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def fail(error):
    print(f"{prefix}{one_line(error)} {HELP_HINT}", file=sys.stderr,
          flush=True)

  def parse(argv):
    exit_if_version_asked(argv)
    try:
      parsed = flags.FLAGS(argv)
    except flags.Error as e:
      fail(e)
      sys.exit(1)
    if flags.FLAGS.version:  # --version=true and the like.
      exit_if_version_asked(["", "--version"])
    return parsed

  def checked_main(argv):
    native_logs.install(flags.FLAGS.native_logs)
    try:
      return main(argv)
    except (app.UsageError, FlagError) as e:
      fail(e)
      return 1

  app.run(checked_main, flags_parser=parse)
