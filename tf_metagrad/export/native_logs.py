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
install it before they import TensorFlow (`tf_metagrad.scripts`) and take
`--native_logs=quiet` (the default) or `all` (`tf_metagrad.export.cli.run`).
"""

import os
import subprocess
import sys
from typing import Sequence

# Whole-line patterns of harmless C++ log lines (bytes, matched anywhere in
# the line).
NOISE: Sequence[bytes] = (
    rb"Unable to register cu(DNN|FFT|BLAS) factory",
    rb"\[reverb/cc/.*\]\s+(Initializing TFRecordCheckpointer|Loading latest "
    rb"checkpoint from|Started replay server on port|Sampler and server are "
    rb"owned by the same process|Shutting down replay server)",
    rb"All log messages before absl::InitializeLog\(\) is called are "
    rb"written to STDERR",
    rb"Compiled cluster using XLA!",
    rb"SetPriority unimplemented for this stream",
)

FILTERED_ENV = "TF_METAGRAD_STDERR_FILTERED"

# The child: copies stdin to stdout line by line, minus the noise. It
# ignores SIGINT/SIGTERM (a Ctrl-C reaches the whole process group) and ends
# when every writer of the pipe is gone.
_FILTER = r"""
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
noise = re.compile(b"|".join(b"(?:" + p + b")" for p in %r))
out = sys.stdout.buffer
for line in sys.stdin.buffer:
  if not noise.search(line):
    out.write(line)
    out.flush()
"""


def install(level: str = "quiet") -> None:
  """Filters C++ log noise from this process's stderr (see the module doc).

  Args:
    level: "quiet" filters `NOISE` and sets `TF_CPP_MIN_LOG_LEVEL=2` (no
      TensorFlow INFO/WARNING lines) unless the variable is already set;
      "all" changes nothing.

  Raises:
    ValueError: an unknown level.
  """
  if level not in ("quiet", "all"):
    raise ValueError(f"level must be 'quiet' or 'all', got {level!r}.")
  if level == "all" or os.environ.get(FILTERED_ENV):
    return
  global _child
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  real_stderr = os.dup(2)
  try:
    _child = subprocess.Popen(
        [sys.executable, "-S", "-E", "-c", _FILTER % (tuple(NOISE),)],
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
