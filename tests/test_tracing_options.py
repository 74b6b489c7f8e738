"""Every `tf.function` of the library, the tests and the benchmarks says
`autograph=False`.

Autograph converts the source of every function a traced function calls. Our
graph code branches and loops with `tf.cond` and `tf.while_loop` where a
tensor decides, so the conversion buys nothing, and it cost about half of a
small trainer's start-up and most of a FRODO finite-difference check
(agents/base.py, tests/agents/helpers.py). A new `tf.function` that forgets
the argument is slow, not wrong, so nothing else would notice.

Read with `ast`: neither the package nor TensorFlow is imported.
"""

import ast
import pathlib
import textwrap
from typing import List

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_TREES = ('tf_metagrad', 'tests', 'benchmarks', 'tools')


def _is_tf_function(node: ast.AST) -> bool:
  return (isinstance(node, ast.Attribute) and node.attr == 'function' and
          isinstance(node.value, ast.Name) and node.value.id == 'tf')


def with_autograph(source: str, path: str) -> List[str]:
  """`path:line` of each `tf.function` call or bare `@tf.function` decorator
  in `source` without an `autograph=` argument."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Call) and _is_tf_function(node.func):
      if not any(k.arg == 'autograph' for k in node.keywords):
        found.append(f'{path}:{node.lineno}')
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      found += [f'{path}:{d.lineno}' for d in node.decorator_list
                if _is_tf_function(d)]
  return found


def test_every_tf_function_turns_autograph_off():
  found = []
  for tree in _TREES:
    for path in sorted((_ROOT / tree).rglob('*.py')):
      found += with_autograph(path.read_text(), str(path.relative_to(_ROOT)))
  assert not found, found


def test_the_check_finds_each_form():
  source = textwrap.dedent("""
      import tensorflow as tf
      a = tf.function(f)
      b = tf.function(f, jit_compile=True)
      c = tf.function(f, autograph=False)

      @tf.function
      def d():
        pass

      @tf.function(input_signature=[])
      def e():
        pass

      @tf.function(autograph=False)
      def g():
        pass
      """)
  assert sorted(with_autograph(source, 'x.py')) == [
      'x.py:11', 'x.py:3', 'x.py:4', 'x.py:7']
