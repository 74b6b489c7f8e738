"""The README's examples run as written, and its facts match the code.

Every ```python block of README.md is executed in order, in one namespace
(later blocks use the names of earlier ones, as a reader's session would),
from a temporary directory so that files they write land there.

The other checks read the sources, not the programs' output, so that they
cost nothing: every `--flag` the README shows exists (and belongs to the
command it follows), every `tf_metagrad.*` name and repository path it
mentions exists, the console-script table matches setup.cfg and the
launchers, the results table has one row per docs/results folder, the
agents and config fields it names exist, the two contract commands stay,
the papers are cited by name, and the README stays short.
"""

import ast
import configparser
import contextlib
import functools
import glob
import io
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_README = os.path.join(ROOT, "README.md")
MAX_LINES = 420

_DEFINE = re.compile(r"flags\.DEFINE_(\w+)\(\s*['\"](\w+)['\"]")
_ABSL_FLAGS = {"help", "helpfull", "helpshort", "helpxml", "flagfile",
               "undefok"}
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_-]*)")
# What starts a command in the README's code: a console script, run.sh, a
# checkout module (`python -m trainers.train` or just `trainers.actor`),
# pytest or a tool script.
_COMMAND = re.compile(
    r"(?P<script>tf-metagrad-[a-z]+)"
    r"|\./run\.sh\s+(?P<runsh>train|test)\b"
    r"|(?P<module>\b(?:tf_metagrad\.programs|trainers|export|benchmarks)"
    r"\.\w+)"
    r"|(?P<pytest>\bpytest\b)"
    r"|(?P<tool>\btools/\w+\.py)")


def _read(path):
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    return f.read()


def _text():
  return _read("README.md")


def _python_blocks():
  return re.findall(r"^```python\n(.*?)^```$", _text(), re.S | re.M)


def _shell_blocks():
  return re.findall(r"^```sh\n(.*?)^```$", _text(), re.S | re.M)


def _inline_code():
  """The README's `inline code` spans, fenced blocks left out."""
  prose = re.sub(r"^```.*?^```$", "", _text(), flags=re.S | re.M)
  return re.findall(r"`([^`]+)`", prose)


def _section(title):
  text = _text()
  match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", text,
                    re.S | re.M)
  assert match, f"README lost its {title!r} section"
  return match.group(1)


def _module_file(module):
  """The source file of a module of the checkout, or None."""
  base = os.path.join(ROOT, *module.split("."))
  for path in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(path):
      return path
  return None


def _defined_flags(path):
  with open(path, encoding="utf-8") as f:
    text = f.read()
  names = set()
  for kind, name in _DEFINE.findall(text):
    names.add(name)
    if kind in ("bool", "boolean"):
      names.add("no" + name)
  return names


def _local_imports(path, prefixes):
  """Modules under `prefixes` that the file at `path` imports."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      for alias in node.names:
        for name in (f"{node.module}.{alias.name}", node.module):
          if name.startswith(prefixes) and _module_file(name):
            found.add(name)
            break
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names
                   if a.name.startswith(prefixes) and _module_file(a.name))
  return found


@functools.lru_cache(maxsize=None)
def _module_flags(module):
  """The flags a program module accepts: its own, those of the modules it
  imports from its own package tree, and what absl and `programs.cli.run`
  add."""
  path = _module_file(module)
  assert path, f"README names module {module}, which does not exist"
  prefixes = (("benchmarks.",) if module.startswith("benchmarks.")
              else ("tf_metagrad.programs.",))
  flags, seen, todo = set(_ABSL_FLAGS), set(), [module]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    flags |= _defined_flags(_module_file(name))
    todo.extend(_local_imports(_module_file(name), prefixes))
  if not module.startswith("benchmarks."):
    flags |= _defined_flags(os.path.join(ROOT, "tf_metagrad", "programs",
                                         "cli.py"))
  return frozenset(flags)


def _scripts_module():
  return ast.parse(_read("tf_metagrad/programs/scripts.py"))


def _programs():
  """`scripts._PROGRAMS`: program key -> module."""
  for node in ast.walk(_scripts_module()):
    if (isinstance(node, ast.Assign) and
        any(getattr(t, "id", None) == "_PROGRAMS" for t in node.targets)):
      return ast.literal_eval(node.value)
  raise AssertionError("tf_metagrad/programs/scripts.py lost _PROGRAMS")


def _launch_keys():
  """scripts.py's entry functions -> the program key each launches."""
  keys = {}
  for node in _scripts_module().body:
    if isinstance(node, ast.FunctionDef):
      calls = [c for c in ast.walk(node) if isinstance(c, ast.Call) and
               getattr(c.func, "id", None) == "launch"]
      if calls:
        keys[node.name] = ast.literal_eval(calls[0].args[0])
  return keys


def _console_scripts():
  """setup.cfg's console scripts -> program key."""
  config = configparser.ConfigParser()
  config.read(os.path.join(ROOT, "setup.cfg"))
  keys = _launch_keys()
  scripts = {}
  for line in config["options.entry_points"]["console_scripts"].splitlines():
    if line.strip():
      name, target = (part.strip() for part in line.split("="))
      module, function = target.split(":")
      assert module == "tf_metagrad.programs.scripts", line
      scripts[name] = keys[function]
  return scripts


def _launcher_key(module):
  """The program key a checkout launcher (`trainers.train`) runs."""
  match = re.search(r"scripts\.(\w+)\(\)", _read(
      os.path.relpath(_module_file(module), ROOT)))
  assert match, f"{module} is not a launcher of tf_metagrad.programs.scripts"
  return _launch_keys()[match.group(1)]


@functools.lru_cache(maxsize=None)
def _pytest_flags():
  import xdist  # pylint: disable=g-import-not-at-top
  flags = set(re.findall(r"addoption\(\s*['\"]--([\w-]+)['\"]",
                         _read("tests/conftest.py")))
  for path in glob.glob(os.path.join(os.path.dirname(xdist.__file__),
                                     "*.py")):
    with open(path, encoding="utf-8") as f:
      flags |= set(re.findall(r"['\"]--([a-z][\w-]*)['\"]", f.read()))
  return frozenset(flags)


def _tool_flags(path):
  return frozenset(re.findall(r"add_argument\(\s*['\"]--([\w-]+)['\"]",
                              _read(path)))


def _run_sh_module(command):
  """The module `./run.sh train` runs (pytest for `./run.sh test`)."""
  text = _read("run.sh")
  case = re.search(rf"^\s*{command}\)\n(.*?);;", text, re.S | re.M)
  assert case, f"run.sh lost its {command} command"
  return re.search(r"-m (\S+)", case.group(1)).group(1)


def _flags_of(match):
  """(command, the flags it accepts) for a `_COMMAND` match."""
  if match.group("script"):
    scripts = _console_scripts()
    script = match.group("script")
    assert script in scripts, f"README names {script}, not in setup.cfg"
    return script, _module_flags(_programs()[scripts[script]])
  if match.group("runsh"):
    module = _run_sh_module(match.group("runsh"))
  elif match.group("pytest"):
    module = "pytest"
  elif match.group("tool"):
    path = match.group("tool")
    assert os.path.isfile(os.path.join(ROOT, path)), path
    return path, _tool_flags(path)
  else:
    module = match.group("module")
  if module == "pytest":
    return "pytest", _pytest_flags()
  if module.startswith(("trainers.", "export.")):
    assert _module_file(module), f"README names {module}, which is missing"
    return module, _module_flags(_programs()[_launcher_key(module)])
  return module, _module_flags(module)


def _command_lines():
  """The README's commands: logical lines of its sh blocks (continuations
  joined, comments dropped) and its inline code spans."""
  lines = []
  for block in _shell_blocks():
    block = re.sub(r"<<'EOF'\n.*?^EOF$", "", block, flags=re.S | re.M)
    for line in block.replace("\\\n", " ").splitlines():
      lines.append(re.sub(r"(^|\s)#.*", "", line))
  return lines + _inline_code()


def _all_known_flags():
  known = set(_pytest_flags())
  for module in _programs().values():
    known |= _module_flags(module)
  for path in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")):
    name = os.path.basename(path)[:-3]
    if name != "__init__":
      known |= _module_flags(f"benchmarks.{name}")
  for path in glob.glob(os.path.join(ROOT, "tools", "*.py")):
    known |= _tool_flags(os.path.relpath(path, ROOT))
  return known


def _top_level_names(path):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  names = set()
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, ast.Assign):
      names.update(getattr(t, "id", None) for t in node.targets)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      names.update((a.asname or a.name).split(".")[0] for a in node.names)
  return names


def _config_fields():
  fields = set()
  for path in glob.glob(os.path.join(ROOT, "tf_metagrad", "agents", "**",
                                     "config.py"), recursive=True):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, ast.ClassDef):
        fields.update(item.target.id for item in node.body
                      if isinstance(item, ast.AnnAssign))
  return fields


def test_readme_has_python_blocks():
  assert len(_python_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  namespace = {"__name__": "__readme__"}
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    for i, block in enumerate(_python_blocks()):
      exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # pylint: disable=exec-used
  learner, batch = namespace["learner"], namespace["batch"]
  assert int(learner.learner_steps.numpy()) == 3
  assert float(learner.skipped_updates.numpy()) == 0
  assert np.isfinite(float(namespace["metrics"]["outer_loss"]))
  assert set(learner.meta_values()) == {"gamma", "lambda_", "alpha", "g_v",
                                        "g_p", "g_e"}
  # The export acts as the learner's greedy policy does.
  assert (tmp_path / "stac_catch_policy" / "saved_model.pb").exists()
  observation = batch.observation[-1]
  exported = namespace["policy"].greedy_action(observation).numpy()
  logits = learner.network(observation)[0][0]
  np.testing.assert_array_equal(exported, np.argmax(logits.numpy(), -1))
  printed = out.getvalue()
  assert "outer loss" in printed and "'gamma'" in printed, printed


def test_readme_is_short():
  lines = _text().count("\n")
  assert lines <= MAX_LINES, (
      f"README.md has {lines} lines (at most {MAX_LINES}): move details to "
      f"docs/")


def test_contract_commands_stay():
  quick_start = _section("Quick start")
  for command in ("./run.sh train", "./run.sh test"):
    assert re.search(rf"^{re.escape(command)}\b", quick_start, re.M), command
  assert _run_sh_module("train") == "trainers.train"
  assert _run_sh_module("test") == "pytest"


def test_every_flag_exists():
  unknown = sorted(set(_FLAG.findall(_text())) - _all_known_flags())
  assert not unknown, f"README documents flags no program defines: {unknown}"


def test_every_flag_belongs_to_its_command():
  wrong = []
  commands = 0
  for line in _command_lines():
    matches = list(_COMMAND.finditer(line))
    for i, match in enumerate(matches):
      end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
      command, accepted = _flags_of(match)
      commands += 1
      wrong += [f"{command} --{flag}" for flag in _FLAG.findall(
          line[match.end():end]) if flag not in accepted]
  assert commands >= 20, commands
  assert not wrong, f"README gives these commands flags they lack: {wrong}"


def test_console_script_table():
  rows = re.findall(r"^\| `(tf-metagrad-[a-z]+)` \| `python -m ([\w.]+)` \| "
                    r"`([\w.]+)` \|$", _text(), re.M)
  scripts = _console_scripts()
  assert sorted(r[0] for r in rows) == sorted(scripts)
  programs = _programs()
  for script, launcher, module in rows:
    assert _launcher_key(launcher) == scripts[script], (script, launcher)
    assert programs[scripts[script]] == module, (script, module)
    assert _module_file(module), module


def test_named_modules_and_paths_exist():
  text = _text()
  missing = []
  for dotted in set(re.findall(r"\btf_metagrad(?:\.\w+)+", text)):
    parts = dotted.split(".")
    k = len(parts)
    while k > 1 and not _module_file(".".join(parts[:k])):
      k -= 1
    module = ".".join(parts[:k])
    rest = parts[k:]
    if not _module_file(module) or len(rest) > 1 or (
        rest and rest[0] not in _top_level_names(_module_file(module))):
      missing.append(dotted)
  # Files by their extension, folders by their trailing slash; a component
  # in capitals (docs/results/NAME/) is a placeholder.
  for path in set(re.findall(
      r"\b((?:tests|docs|tf_metagrad|tools|benchmarks)/(?:[\w.-]+/)*"
      r"(?:[\w.-]+\.(?:py|md|json|csv|png|txt)\b)?)", text)):
    if (not re.search(r"/[A-Z]+/", path) and
        not os.path.exists(os.path.join(ROOT, path))):
      missing.append(path)
  for name in set(re.findall(r"\b([A-Z]+\.md)\b", text)) - {"README.md"}:
    if not os.path.exists(os.path.join(ROOT, "docs", name)):
      missing.append(f"docs/{name}")
  assert not missing, f"README names what does not exist: {sorted(missing)}"


def test_results_table_has_every_results_folder():
  rows = re.findall(r"^\| `(\w+)` \(", _section("Results"), re.M)
  folders = sorted(
      os.path.basename(os.path.dirname(path)) for path in
      glob.glob(os.path.join(ROOT, "docs", "results", "*", "results.md")))
  assert sorted(rows) == folders
  assert sorted(os.listdir(os.path.join(ROOT, "docs", "results"))) == folders


def test_agents_and_config_fields_exist():
  tree = ast.parse(_read("tf_metagrad/agents/__init__.py"))
  agents = next(
      [ast.literal_eval(key) for key in node.value.keys]
      for node in tree.body if isinstance(node, ast.Assign) and
      any(getattr(t, "id", None) == "AGENTS" for t in node.targets))
  listed = re.search(r"`--agent`: (.*?);", _section("Training"), re.S)
  assert listed, "README's Training section lost its agent list"
  assert re.findall(r"`(\w+)`", listed.group(1)) == agents
  fields = _config_fields()
  named = set(re.findall(r"--config=(\w+)=", _text()))
  named |= set(re.findall(r"`(\w+)=", _section("Agents and configs")))
  assert named - {"name"} <= fields, sorted(named - {"name"} - fields)


def test_papers_are_cited_by_name():
  text = _text()
  assert not re.search(r"seed 00\d", text, re.I)
  references = _section("References")
  for title in ("Reimplementation and Extension of Meta-Gradient "
                "Reinforcement Learning with an Objective Discovered Online",
                "Distributional Meta-Gradient Reinforcement Learning",
                "A Self-Tuning Actor-Critic Algorithm"):
    assert title in " ".join(references.split()), title
  for short in ("Qiu (2021)", "Yin et al. 2023", "Zahavy et al. (2020)"):
    assert short in text, short


def test_dated_docs_are_written_for_readers():
  """Dated files under docs/ hold measurements, not a development log."""
  paths = glob.glob(os.path.join(ROOT, "docs", "20*.md"))
  assert paths
  for path in paths:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    assert not re.search(r"\bsessions?\b|#\d|\bissue \d", text, re.I), path
