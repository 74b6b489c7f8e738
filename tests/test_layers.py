"""The package's layers stay honest: short functions, no import cycles, and
imports that only point down.

Three checks over `tf_metagrad/`, read with `ast` (neither the package nor
TensorFlow is imported, so the file costs well under a second):

(a) no function or method is over `MAX_LINES` = 100 lines, from its `def`
    line to its last line (a longer one has parts that want names);
(b) no import cycle among the package's modules, counting the imports that
    run when a module is imported (module level, `if`/`try` and class bodies;
    not function bodies, which run later). Importing `a.b.c` runs `a.b`'s
    `__init__` too, so an edge to a module is also an edge to the packages
    above it, except to the importer's own ancestors, which Python has begun
    importing before the importer (a submodule may always import its
    package);
(c) layer order: a module imports only modules of its own layer or a lower
    one, counting every import, late function-level ones included (a late
    import hides a dependency from start-up, not from the design).

Layers, bottom to top (`LAYERS`; a module's layer is that of its first name
under `tf_metagrad`):

  the package root, types, version, distribute
  < ops, optim < networks, meta < envs < agents < runs < system < serving
  < training < analysis < programs

The root (`tf_metagrad/__init__.py`) is in the bottom layer: it holds the
version string only, and every module's import runs it first. `distribute`
is there too although it is a package of TensorFlow helpers: optim, meta
and agents assign mirrored variables and ask which strategies compile with
XLA (`distribute.replicas`, `distribute.xla`), and nothing in it needs more
than TensorFlow. A new top-level module or package fails (c) until it is
given a layer here.
"""

import ast
import pathlib
import textwrap
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "tf_metagrad"
MAX_LINES = 100
# Bottom to top; "" is the package root (see the module docstring).
LAYERS = (
    ("", "types", "version", "distribute"),
    ("ops", "optim"),
    ("networks", "meta"),
    ("envs",),
    ("agents",),
    ("runs",),
    ("system",),
    ("serving",),
    ("training",),
    ("analysis",),
    ("programs",),
)

_Function = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


class Module:
  """One module of the tree: its dotted name, file and parsed source."""

  def __init__(self, name: str, path: pathlib.Path, is_package: bool,
               root: pathlib.Path) -> None:
    self.name = name
    self.path = path.relative_to(root)
    self.is_package = is_package
    self.tree = ast.parse(path.read_text(), str(path))


def find_modules(root: pathlib.Path, package: str) -> Dict[str, Module]:
  """Every module of `package` (the directory `root / package`) by name."""
  modules = {}
  for path in sorted((root / package).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
      parts.pop()
    name = ".".join(parts)
    modules[name] = Module(name, path, is_package, root)
  return modules


def _import_nodes(node: ast.AST, module_level: bool) -> Iterator[ast.stmt]:
  """The import statements under `node`; with `module_level`, not those in
  function bodies."""
  for child in ast.iter_child_nodes(node):
    if isinstance(child, (ast.Import, ast.ImportFrom)):
      yield child
    elif not (module_level and isinstance(child, _Function)):
      yield from _import_nodes(child, module_level)


def _resolve(module: Module, node: ast.stmt,
             modules: Dict[str, Module]) -> Iterator[Tuple[str, int]]:
  """(imported module of the tree, line) for each name `node` imports."""
  if isinstance(node, ast.Import):
    targets = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:
      package = module.name.split(".")
      if not module.is_package:
        package.pop()
      package = package[:len(package) - node.level + 1]
      base = ".".join(package + ([base] if base else []))
    # `from p import x`: x is the module p.x if there is one, else a name
    # defined in p.
    targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
               else base for alias in node.names]
  for target in targets:
    while target and target not in modules:
      target = target.rpartition(".")[0]
    if target:
      yield target, node.lineno


def imports(module: Module, modules: Dict[str, Module],
            module_level: bool) -> List[Tuple[str, int]]:
  """(module of the tree, line) of each import of `module`."""
  return [found for node in _import_nodes(module.tree, module_level)
          for found in _resolve(module, node, modules)]


def _ancestors(name: str) -> List[str]:
  parts = name.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(modules: Dict[str, Module]) -> Dict[str, Set[str]]:
  """module -> the modules its import runs (see check (b))."""
  graph = {}
  for name, module in modules.items():
    own = set(_ancestors(name)) | {name}
    edges = set()
    for target, _ in imports(module, modules, module_level=True):
      edges.update(m for m in _ancestors(target) + [target]
                   if m in modules and m not in own)
    graph[name] = edges
  return graph


def import_cycles(modules: Dict[str, Module]) -> List[List[str]]:
  """The strongly connected groups of more than one module of the import
  graph, each sorted (Tarjan's algorithm, iterative)."""
  graph = import_graph(modules)
  index, low, on_stack, stack, groups = {}, {}, set(), [], []
  for start in sorted(graph):
    if start in index:
      continue
    work = [(start, iter(sorted(graph[start])))]
    index[start] = low[start] = len(index)
    stack.append(start)
    on_stack.add(start)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = len(index)
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        group = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          group.append(member)
          if member == node:
            break
        if len(group) > 1:
          groups.append(sorted(group))
  return sorted(groups)


def layer_name(name: str, package: str) -> str:
  """The first name of module `name` under `package` ("" for the root)."""
  return name[len(package) + 1:].split(".")[0] if name != package else ""


def layer_of(name: str, package: str,
             layers: Sequence[Sequence[str]]) -> Optional[int]:
  """The index in `layers` of the module `name`, None if it has none."""
  top = layer_name(name, package)
  for i, layer in enumerate(layers):
    if top in layer:
      return i
  return None


def upward_imports(modules: Dict[str, Module], package: str,
                   layers: Sequence[Sequence[str]]) -> List[str]:
  """`path:line importer -> imported` for each import (any level) of a
  higher layer, and `path: no layer` for a module outside `layers`."""
  found = []
  for name, module in sorted(modules.items()):
    own = layer_of(name, package, layers)
    if own is None:
      found.append(f"{module.path}: {name} has no layer")
      continue
    for target, line in imports(module, modules, module_level=False):
      theirs = layer_of(target, package, layers)
      if theirs is not None and theirs > own:
        found.append(f"{module.path}:{line} {name} (layer {own}) imports "
                     f"{target} (layer {theirs})")
  return found


def long_functions(modules: Dict[str, Module],
                   max_lines: int = MAX_LINES) -> List[str]:
  """`path:line name (N lines)` for each function or method over
  `max_lines` lines."""
  found = []
  for module in modules.values():
    for node in ast.walk(module.tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > max_lines:
          found.append(f"{module.path}:{node.lineno} {node.name} "
                       f"({length} lines)")
  return sorted(found)


def _package_modules() -> Dict[str, Module]:
  return find_modules(_ROOT, PACKAGE)


def test_no_function_is_over_100_lines():
  found = long_functions(_package_modules())
  assert not found, "split these into named parts:\n" + "\n".join(found)


def test_no_import_cycles():
  cycles = import_cycles(_package_modules())
  assert not cycles, "import cycles:\n" + "\n".join(
      " <-> ".join(group) for group in cycles)


def test_imports_point_down_the_layers():
  found = upward_imports(_package_modules(), PACKAGE, LAYERS)
  assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_every_layer_name_is_in_the_tree():
  # A layer name gone from the tree would leave the order stale.
  tops = {layer_name(name, PACKAGE) for name in _package_modules()}
  assert tops == {name for layer in LAYERS for name in layer}


# ----------------------------------------------------- the checks can fail


def _write(root: pathlib.Path, files: Dict[str, str]) -> Dict[str, Module]:
  for relative, source in files.items():
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
  return find_modules(root, "pkg")


_TINY_LAYERS = (("", "low"), ("high",))


def test_checker_finds_a_cycle_and_ignores_late_imports(tmp_path):
  modules = _write(tmp_path, {
      "pkg/__init__.py": "",
      "pkg/low/__init__.py": "from pkg.low import c\n",
      "pkg/low/c.py": "from pkg.low import d\n",
      "pkg/low/d.py": "import pkg.low.c\n",
      "pkg/low/e.py": ("from pkg.low import f\n"),
      "pkg/low/f.py": ("def g():\n"
                       "  from pkg.low import e\n"),
  })
  assert import_cycles(modules) == [["pkg.low.c", "pkg.low.d"]]
  # Through a package's __init__: x imports pkg.high.y, which runs
  # pkg.high's __init__, which imports x back.
  modules = _write(tmp_path, {
      "pkg/low/d.py": "",
      "pkg/high/__init__.py": "from pkg.low import x\n",
      "pkg/high/y.py": "",
      "pkg/low/x.py": "class K:\n  from pkg.high import y\n",
  })
  assert import_cycles(modules) == [["pkg.high", "pkg.low.x"]]


def test_checker_finds_upward_imports_late_ones_too(tmp_path):
  modules = _write(tmp_path, {
      "pkg/__init__.py": "",
      "pkg/low/__init__.py": "",
      "pkg/low/a.py": ("import os\n"
                       "from pkg.low import b\n"
                       "def f():\n"
                       "  from pkg.high import h  # late, still counted\n"),
      "pkg/low/b.py": "from . import a\nfrom .. import low\n",
      "pkg/high/__init__.py": "",
      "pkg/high/h.py": "from pkg.low import a\nimport pkg\n",
      "pkg/other.py": "",
  })
  found = upward_imports(modules, "pkg", _TINY_LAYERS)
  assert len(found) == 2, found
  assert found[0].endswith("a.py:4 pkg.low.a (layer 0) imports pkg.high.h "
                           "(layer 1)"), found
  assert found[1].endswith("other.py: pkg.other has no layer"), found


def test_checker_finds_a_101_line_function(tmp_path):
  lines = [f"x{i} = {i}\n" for i in range(99)]
  modules = _write(tmp_path, {
      "pkg/__init__.py": "",
      # The def line and 99 more: 100 lines, allowed.
      "pkg/low/m.py": ("def ok():\n" + "".join("  " + l for l in lines)
                       # 101 lines: one too many.
                       + "class C:\n  def long(self):\n"
                       + "".join("    " + l for l in lines)
                       + "    return 1\n"),
  })
  found = long_functions(modules)
  assert len(found) == 1, found
  assert found[0].endswith("m.py:102 long (101 lines)"), found
