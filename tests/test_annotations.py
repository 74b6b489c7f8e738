"""Every public function and method of `tf_metagrad` is fully type-annotated.

Public: a module-level function whose name does not start with `_`, and every
method of a module-level class whose name does not start with `_`, where the
method name does not start with `_` or is `__init__` / `__call__`. Functions
nested inside functions are not part of the API. Fully annotated: every
parameter but a method's `self` / `cls` (positional, keyword-only, `*args`,
`**kwargs`) has an annotation, and there is a return annotation (`-> None`
for `__init__` too).

The check reads the source with `ast`, so it imports neither the package nor
TensorFlow.
"""

import ast
import pathlib
import textwrap
from typing import Iterator, List, Tuple, Union

_PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'tf_metagrad'
_PUBLIC_DUNDERS = ('__init__', '__call__')

_Function = Union[ast.FunctionDef, ast.AsyncFunctionDef]


def _public_functions(
    tree: ast.Module) -> Iterator[Tuple[str, _Function, bool]]:
  """(qualified name, node, is_method) of each public function of a module."""
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      if not node.name.startswith('_'):
        yield node.name, node, False
    elif isinstance(node, ast.ClassDef) and not node.name.startswith('_'):
      for member in node.body:
        if not isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
          continue
        if (not member.name.startswith('_') or
            member.name in _PUBLIC_DUNDERS):
          yield f'{node.name}.{member.name}', member, True


def _missing(function: _Function, is_method: bool) -> List[str]:
  """What `function` lacks: parameter names (`*args`, `**kwargs` starred)
  and/or "return"."""
  args = function.args
  positional = args.posonlyargs + args.args
  if is_method and positional and positional[0].arg in ('self', 'cls'):
    positional = positional[1:]
  missing = [a.arg for a in positional + args.kwonlyargs
             if a.annotation is None]
  if args.vararg is not None and args.vararg.annotation is None:
    missing.append('*' + args.vararg.arg)
  if args.kwarg is not None and args.kwarg.annotation is None:
    missing.append('**' + args.kwarg.arg)
  return missing


def unannotated(source: str, path: str) -> List[str]:
  """`path:line name (missing: ...)` for each incompletely annotated public
  function of the module `source`."""
  problems = []
  for name, function, is_method in _public_functions(ast.parse(source, path)):
    parts = []
    params = _missing(function, is_method)
    if params:
      parts.append('params ' + ', '.join(params))
    if function.returns is None:
      parts.append('return')
    if parts:
      problems.append(f'{path}:{function.lineno} {name} '
                      f'(missing: {"; ".join(parts)})')
  return problems


def _package_files() -> List[pathlib.Path]:
  return sorted(_PACKAGE.rglob('*.py'))


def test_public_api_is_fully_annotated():
  files = _package_files()
  # Guards against a wrong path making the test pass on nothing.
  assert len(files) > 50, f'found only {len(files)} files under {_PACKAGE}'
  checked = 0
  problems = []
  for path in files:
    source = path.read_text(encoding='utf-8')
    checked += len(list(_public_functions(ast.parse(source, str(path)))))
    problems += unannotated(source, str(path.relative_to(_PACKAGE.parent)))
  assert checked > 300, f'found only {checked} public functions'
  assert not problems, (
      f'{len(problems)} public functions are not fully annotated:\n' +
      '\n'.join(problems))


def test_checker_reports_unannotated_functions_and_methods():
  source = textwrap.dedent('''
      def bare(x, *args, y, **kwargs):
        return x

      def no_return(x: int):
        return x

      def fine(x: int, *args: int, y: int = 0, **kwargs: str) -> int:
        return x

      class Layer:

        def __init__(self, units: int):
          self.units = units

        def call(self, inputs) -> int:
          return inputs

        def __call__(self, inputs: int):
          return inputs

        @classmethod
        def from_config(cls, config):
          return cls(**config)

        @staticmethod
        def helper(value) -> int:
          return value

        def done(self) -> None:
          pass
  ''')
  assert unannotated(source, 'm.py') == [
      'm.py:2 bare (missing: params x, y, *args, **kwargs; return)',
      'm.py:5 no_return (missing: return)',
      'm.py:13 Layer.__init__ (missing: return)',
      'm.py:16 Layer.call (missing: params inputs)',
      'm.py:19 Layer.__call__ (missing: return)',
      'm.py:23 Layer.from_config (missing: params config; return)',
      'm.py:27 Layer.helper (missing: params value)',
  ]


def test_checker_ignores_private_and_nested_functions():
  source = textwrap.dedent('''
      def _private(x):
        return x

      def public(x: int) -> int:
        def nested(y):
          return y
        return nested(x)

      class _PrivateClass:

        def method(self, x):
          return x

      class Public:

        def _helper(self, x):
          return x

        def __repr__(self):
          return 'Public'

        def method(self, x: int) -> int:
          def inner(z):
            return z
          return inner(x)

        class Inner:

          def method(self, x):
            return x
  ''')
  assert unannotated(source, 'm.py') == []
