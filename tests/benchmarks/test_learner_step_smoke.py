"""Smoke test of benchmarks/learner_step.py: runs end to end, prints its
machine-readable last line. Asserts no speed."""

import re

from absl import app
from absl import flags
import pytest

from benchmarks import learner_step

_FLOAT = r"(\d+(?:\.\d+)?)"
_LAST_LINE = re.compile(
    rf"agent=(\w+) network=(\w+) step_ms={_FLOAT} impala_step_ms={_FLOAT} "
    rf"ratio={_FLOAT} peak_rss_mb={_FLOAT}")
_TINY_FLAGS = ["--network=mlp", "--batch_size=2", "--unroll_length=4",
               "--repeats=1", "--warmup=1", "--tiny"]


@pytest.fixture
def parse_flags():
  """Parses benchmark flags and restores the defaults afterwards."""

  def parse(args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["learner_step"] + args)

  yield parse
  flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("agent", ["stac", "frodo"])
def test_last_line_is_machine_readable(agent, parse_flags, capsys):
  parse_flags([f"--agent={agent}"] + _TINY_FLAGS)
  learner_step.main(["learner_step"])
  lines = capsys.readouterr().out.strip().splitlines()
  match = _LAST_LINE.fullmatch(lines[-1])
  assert match, lines[-1]
  assert match.group(1) == agent
  assert match.group(2) == "mlp"
  numbers = [float(match.group(i)) for i in range(3, 7)]
  assert all(x > 0 for x in numbers), numbers
  step_ms, impala_ms, ratio, _ = numbers
  assert ratio == pytest.approx(step_ms / impala_ms, rel=1e-2, abs=2e-3)


def test_frodo_unroll_must_split_into_segments(parse_flags):
  parse_flags(["--agent=frodo", "--frodo_inner_steps=2"] + _TINY_FLAGS)
  with pytest.raises(app.UsageError, match="divisible by .* = 3"):
    learner_step.main(["learner_step"])


def test_bad_flag_values_are_rejected(parse_flags):
  with pytest.raises(flags.IllegalFlagValueError, match="agent"):
    parse_flags(["--agent=dqn"])
  with pytest.raises(flags.IllegalFlagValueError, match="batch_size"):
    parse_flags(["--batch_size=0"])


def test_empty_head_hidden_sizes_measure_linear_heads(parse_flags, capsys):
  parse_flags(["--agent=stac", "--head_hidden_sizes="] + _TINY_FLAGS)
  learner_step.main(["learner_step"])
  first = capsys.readouterr().out.strip().splitlines()[0]
  assert "head_hidden_sizes=() " in first, first
  parse_flags(["--agent=stac", "--head_hidden_sizes=4,x"] + _TINY_FLAGS)
  with pytest.raises(app.UsageError, match="--head_hidden_sizes=4,x"):
    learner_step.main(["learner_step"])


def test_bfloat16_compute_reaches_the_learner(parse_flags, capsys):
  parse_flags(["--agent=impala", "--compute_dtype=bfloat16"] + _TINY_FLAGS)
  learner_step.main(["learner_step"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert " compute_dtype=bfloat16 " in lines[0], lines[0]
  assert _LAST_LINE.fullmatch(lines[-1]), lines[-1]
