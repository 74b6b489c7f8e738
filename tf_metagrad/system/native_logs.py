"""Keeps the known start-up noise of TensorFlow's and Reverb's C++ logs off
the terminal of our programs.

On a CPU machine every run printed three "Unable to register cuDNN/cuFFT/
cuBLAS factory" error lines when TensorFlow loads (its CUDA plugins register
twice; nothing is wrong) and about eight Reverb lines ("Started replay
server", one "Sampler and server are owned by the same process" per client,
...). They come from C++ straight to file descriptor 2, so Python's logging
cannot filter them, and TensorFlow's `TF_CPP_MIN_LOG_LEVEL=3` would also hide
real errors while leaving Reverb's lines alone.

`install()` points descriptor 2 at a pipe read by a small child process that
copies every line to the real stderr except those matching `NOISE`. A child
process, not a thread, so that the last lines before an abort (a C++
`terminate`, a fatal Python error) still get through: the child reads until
every writer has closed the pipe. Child processes of the program (actor
processes) inherit the filtered descriptor; `FILTERED_ENV` tells them not
to start a filter of their own (a parent that gives a child another stderr,
such as a log file, removes it from the child's environment). The programs
install it before they import TensorFlow (`tf_metagrad.programs.scripts`)
and take `--native_logs=quiet` (the default) or `all`
(`tf_metagrad.programs.cli.run`).

Reverb writes a log line piece by piece (one write per `<<` of an unbuffered
`std::cerr`), and its clients start on several threads at once, so two of
its lines can reach the pipe interleaved: one line then holds a piece of
another, and the rest of that other makes a line of its own such as
"16512) so Table weights is accessed directly without gRPC.". The filter
reads whole lines (pieces are joined up to the newline before matching) and
drops a line made only of pieces of the known Reverb and ALE lines
(`PIECES`), which covers both halves; a line that also holds text of
another writer is kept whole, glued pieces and all, so nothing real is lost.

TensorFlow's Python logger is filtered too: `tf.train.latest_checkpoint`
and `tf.train.CheckpointManager` warn twice about an unreadable
`checkpoint` index (`checkpoint_management.py`), which our programs report
in one line of their own (`tf_metagrad.runs.check_checkpoint_index`).
"""

import logging
import os
import subprocess
import sys
from typing import Sequence

# Patterns of harmless log lines that their writers write whole (one write
# per line), matched anywhere in a line.
NOISE: Sequence[bytes] = (
    rb"Unable to register cu(DNN|FFT|BLAS) factory",
    rb"All log messages before absl::InitializeLog\(\) is called are "
    rb"written to STDERR",
    rb"Compiled cluster using XLA!",
    rb"SetPriority unimplemented for this stream",
)

# The fixed pieces of the harmless lines written piece by piece (Reverb's;
# ALE's banner, written in two pieces, when an ale-py interface is created
# before its logger mode is lowered). A line is dropped when it holds at
# least one of them and nothing but them, brackets, "] " and runs of
# characters without spaces, brackets or parentheses (file names, line
# numbers, ports, paths, process ids, table names, versions).
PIECES: Sequence[bytes] = (
    rb" ?Initializing TFRecordCheckpointer in ",
    rb"Loading latest checkpoint from ",
    rb"Started replay server on port ",
    rb"Sampler and server are owned by the same process \(",
    rb"\) so Table ",
    rb" is accessed directly without gRPC\.",
    rb"Shutting down replay server",
    rb"A\.L\.E: Arcade Learning Environment \(version [^\s()]*\)",
    rb"\[Powered by Stella\]",
)

FILTERED_ENV = "TF_METAGRAD_STDERR_FILTERED"

# The child: copies stdin to stdout line by line, minus the noise. It
# ignores SIGINT/SIGTERM (a Ctrl-C reaches the whole process group) and ends
# when every writer of the pipe is gone. Iterating over the buffered stdin
# yields whole lines however the pipe's reads split them. The generic run of
# PIECES' grammar is possessive, so a long line that is not noise fails at
# once instead of trying every split of its words.
_FILTER = r"""
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
noise = re.compile(b"|".join(b"(?:" + p + b")" for p in %r))
pieces = %r
piece = re.compile(b"|".join(pieces))
only_pieces = re.compile(
    b"(?:" + b"|".join(pieces) + rb"|\[|\] ?|[^\s\[\]()]++)+")
out = sys.stdout.buffer
for line in sys.stdin.buffer:
  text = line.rstrip(b"\r\n")
  if noise.search(line) or (piece.search(text) and
                            only_pieces.fullmatch(text)):
    continue
  out.write(line)
  out.flush()
"""


class _CheckpointIndexWarnings(logging.Filter):
  """Drops the warnings of `get_checkpoint_state` about an unreadable
  checkpoint index (see the module doc)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.module == "checkpoint_management" and
                record.funcName == "get_checkpoint_state")


def _filter_python_logs() -> None:
  # By name: TensorFlow's logger is this one, created or not yet.
  logger = logging.getLogger("tensorflow")
  if not any(isinstance(f, _CheckpointIndexWarnings) for f in logger.filters):
    logger.addFilter(_CheckpointIndexWarnings())


def install(level: str = "quiet") -> None:
  """Filters C++ log noise from this process's stderr (see the module doc).

  Args:
    level: "quiet" filters `NOISE`, `PIECES` and TensorFlow's checkpoint
      index warnings and sets `TF_CPP_MIN_LOG_LEVEL=2` (no TensorFlow C++
      INFO/WARNING lines) unless the variable is already set; "all"
      changes nothing.

  Raises:
    ValueError: an unknown level.
  """
  if level not in ("quiet", "all"):
    raise ValueError(f"level must be 'quiet' or 'all', got {level!r}.")
  if level == "all":
    return
  # In every process: a child that inherits the descriptor filter still
  # has Python loggers of its own.
  _filter_python_logs()
  if os.environ.get(FILTERED_ENV):
    return
  global _child
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  real_stderr = os.dup(2)
  try:
    _child = subprocess.Popen(
        [sys.executable, "-S", "-E", "-c",
         _FILTER % (tuple(NOISE), tuple(PIECES))],
        stdin=subprocess.PIPE, stdout=real_stderr,
        stderr=subprocess.DEVNULL)
  finally:
    os.close(real_stderr)
  os.dup2(_child.stdin.fileno(), 2)
  # Only descriptor 2 may keep the pipe open, so that the child sees its
  # end when this process (and its own children) exit.
  _child.stdin.close()
  os.environ[FILTERED_ENV] = "1"


_child = None
