r"""Plots and tabulates run directories: return vs env steps, metaparameters.

  python -m trainers.plot DIR [DIR ...] --output=OUT.png [--table=OUT.md] \
      [--group_by=setting|agent|env|none] [--metrics=NAME|PATTERN,...]

  e.g. python -m trainers.plot runs/stacx-catch-seed* runs/impala-catch-seed* \
           --output=catch.png --table=catch.md

Each DIR is a run directory written by trainers.train (its metrics/*.csv
chunks, read together, or an older run's metrics.csv, and run_spec.json),
on any file system TensorFlow reads (gs://... too); a DIR with * ? or [ is
expanded with tf.io.gfile.glob, for file systems the shell cannot list.

Runs are grouped by --group_by: `setting` (default) puts the seeds of one
agent, env and config together; `agent` and `env` group by that alone;
`none` draws every directory on its own (and needs no run_spec.json). Each
group is drawn as its mean over seeds with a 95% band, interpolated on a
common env-step grid (dashed past the shortest seed's end).

The figure's first row compares the groups: episode_return, the greedy
evaluations' eval/mean_return (a series of its own, marked at the env steps
evaluated) and any other selected metric that is not a metaparameter, a
curve per group. Then a row per agent: one panel per metaparameter group
(all of STACX's per-head gammas in one panel, its lambdas in another),
a curve per column. A panel without values is left out. --metrics takes
names or glob patterns: a column, a metaparameter group (meta/gamma), or
a pattern such as 'meta/*' or '*loss'; by default episode_return,
eval/mean_return and every metaparameter (but the min/max of vector ones).

Writes OUT.png and prints a markdown table (also written to --table): per
group the number of seeds, each metric's final mean and band at the last
env step every seed reached, and the band of the runs' last
eval/mean_return. A missing directory, a directory without metrics or a
metric that matches nothing ends with one line on stderr and exit code 1.
"""

import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags

from tf_metagrad.programs import cli

FLAGS = flags.FLAGS


def _define_flags():
  # Defined only when run as a program: tests and other binaries import
  # plot() beside flags of their own, and a required --output would fail
  # their flag parsing.
  flags.DEFINE_string("output", None, "PNG file to write (any tf.io.gfile "
                      "path).")
  flags.DEFINE_string("table", None, "Markdown file to write the table to "
                      "(it is printed either way).")
  flags.DEFINE_string("csv", None, "CSV file to write the drawn curves to "
                      "(group, metric, env_steps, mean, lo95, hi95).")
  flags.DEFINE_enum("group_by", "setting", ["setting", "agent", "env", "none"],
                    "How runs form the bands: seeds of one setting (agent, env "
                    "and config), one agent, one env, or every run alone.")
  flags.DEFINE_list("metrics", [], "Metrics to draw: columns, "
                    "metaparameter groups (meta/gamma: every meta/gamma/... "
                    "column in one panel) or glob patterns ('meta/*', "
                    "'*loss'). Default: episode_return, eval/mean_return "
                    "and every metaparameter.")
  flags.mark_flag_as_required("output")


def _expand(args):
  """The run directories: globs expanded, repeats dropped, order kept."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dirs = []
  for arg in args:
    if any(c in arg for c in "*?["):
      matches = sorted(tf.io.gfile.glob(arg))
      if not matches:
        raise cli.FlagError(f"{arg}: matches no directory")
      found = [m for m in matches if tf.io.gfile.isdir(m)]
      if not found:
        raise cli.FlagError(f"{arg}: matches only files ({matches[0]}...); "
                            f"expected run directories")
    else:
      found = [arg]
    for path in found:
      if path.rstrip("/") not in [d.rstrip("/") for d in dirs]:
        dirs.append(path)
  return dirs


def load(args: Sequence[str], group_by: str = "setting",
         metrics: Sequence[str] = ()) -> Tuple[Dict[str, Any], List[str]]:
  """Reads the runs in `args` and summarizes their groups.

  Returns:
    The groups' `curves.Summary` by label, and the metric columns.

  Raises:
    cli.FlagError: one line naming the bad directory, file or metric.
  """
  if not args:
    raise cli.FlagError("expected at least one run directory: "
                        "python -m trainers.plot DIR [DIR ...] --output=F.png")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  curves_lib = _plotting()
  try:
    loaded = [curves_lib.load_run(d, need_spec=group_by != "none")
              for d in _expand(args)]
    columns = curves_lib.resolve_metrics(metrics, loaded)
  except ValueError as e:
    raise cli.FlagError(str(e)) from None
  except tf.errors.OpError as e:  # Unreadable: permissions, remote errors.
    raise cli.FlagError(e.message.splitlines()[0]) from None
  groups = curves_lib.group_runs(loaded, group_by)
  return {label: curves_lib.summarize(members, columns)
          for label, members in groups.items()}, columns


def _plotting():
  try:
    # pylint: disable-next=g-import-not-at-top
    from tf_metagrad.analysis import curves
  except ImportError as e:
    raise cli.FlagError(f"{e}: plotting needs matplotlib, e.g. "
                        f"pip install -e '.[bench]'") from None
  return curves


def plot(args: Sequence[str], output: str, table: Optional[str] = None,
         group_by: str = "setting", metrics: Sequence[str] = (),
         curves: Optional[str] = None) -> str:
  """Reads the runs in `args`, writes the PNG (and the table and the
  curves' CSV when given paths); returns the table.

  Raises:
    cli.FlagError: one line naming the bad directory, file or metric.
  """
  if not output.lower().endswith(".png"):
    raise cli.FlagError(f"--output={output}: expected a file name ending in "
                        f".png")
  summaries, columns = load(args, group_by, metrics)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  curves_lib = _plotting()
  text = curves_lib.table(summaries, columns)
  try:
    png = curves_lib.figure(summaries, columns)
  except ValueError as e:
    raise cli.FlagError(str(e)) from None
  outputs = [("output", output, "wb", png)]
  if table is not None:
    outputs.append(("table", table, "w", text))
  if curves is not None:
    outputs.append(("csv", curves, "w",
                    curves_lib.curves_csv(summaries, columns)))
  for flag, path, mode, content in outputs:
    try:
      parent = os.path.dirname(path)
      if parent and not tf.io.gfile.isdir(parent):
        tf.io.gfile.makedirs(parent)
      with tf.io.gfile.GFile(path, mode) as f:
        f.write(content)
    except tf.errors.OpError as e:
      raise cli.FlagError(f"--{flag}={path}: cannot write it "
                          f"({e.message.splitlines()[0]})") from None
  return text


def main(argv: Sequence[str]) -> int:
  text = plot(argv[1:], FLAGS.output, FLAGS.table, FLAGS.group_by,
              FLAGS.metrics, FLAGS.csv)
  print(text, end="", flush=True)
  written = [p for p in (FLAGS.output, FLAGS.table, FLAGS.csv) if p]
  print(f"wrote {', '.join(written)}", file=sys.stderr, flush=True)
  return 0


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.programs.scripts`)."""
  _define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
