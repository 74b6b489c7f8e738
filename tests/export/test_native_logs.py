"""The stderr filter of our programs drops the known C++ noise, passes the
rest in order, and keeps the last lines of a process that aborts."""

import os
import subprocess
import sys

import pytest

from tests.trainers import procs

_NOISE = [
    "2026-01-01 00:00:00.000000: E external/local_xla/xla/stream_executor/"
    "cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "[reverb/cc/platform/tfrecord_checkpointer.cc:162]  Initializing "
    "TFRecordCheckpointer in /tmp/x.",
    "[reverb/cc/platform/default/server.cc:71] Started replay server on "
    "port 1234",
    "[reverb/cc/client.cc:165] Sampler and server are owned by the same "
    "process (1) so Table weights is accessed directly without gRPC.",
]
_KEPT = [
    "[reverb/cc/client.cc:99] Some reverb error that is not noise",
    "E tensorflow/core/x.cc:1] A real TensorFlow error",
    "a Python line",
]

# Writes noise and kept lines to descriptor 2 from this process and from a
# child process, the way C++ code does, then aborts like a C++ terminate.
_PROGRAM = r"""
import os, subprocess, sys
from tf_metagrad.export import native_logs
native_logs.install(sys.argv[1])
noise, kept = %r, %r
for a, b in zip(noise, kept):
  os.write(2, (a + "\n").encode())
  os.write(2, (b + "\n").encode())
subprocess.run([sys.executable, "-c",
                "import os, sys; os.write(2, (sys.argv[1] + '\\n').encode());"
                "os.write(2, (sys.argv[2] + '\\n').encode())",
                noise[-1], "from the child"], check=True)
print("last words", file=sys.stderr, flush=True)
os.abort()
"""


def _run(level):
  env = dict(procs.environment())
  env.pop("TF_CPP_MIN_LOG_LEVEL")
  return subprocess.run(
      [sys.executable, "-c", _PROGRAM % (_NOISE, _KEPT), level],
      cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=60,
      check=False)


def test_quiet_drops_the_noise_and_keeps_the_rest_in_order():
  result = _run("quiet")
  assert result.returncode == -6  # SIGABRT
  assert result.stderr.splitlines() == _KEPT + ["from the child",
                                                "last words"]


def test_all_keeps_every_line():
  result = _run("all")
  lines = result.stderr.splitlines()
  expected = [line for pair in zip(_NOISE, _KEPT) for line in pair]
  assert lines[:len(expected)] == expected
  assert lines[len(expected):] == [_NOISE[-1], "from the child",
                                   "last words"]


def test_a_filtered_process_does_not_filter_twice():
  code = ("import os, sys\n"
          "from tf_metagrad.export import native_logs\n"
          "native_logs.install('quiet')\n"
          "first = os.fstat(2).st_ino\n"
          "native_logs.install('quiet')\n"
          "assert os.fstat(2).st_ino == first\n"
          "assert os.environ[native_logs.FILTERED_ENV] == '1'\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=procs.ROOT,
                          env=procs.environment(), capture_output=True,
                          text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr


def test_unknown_level():
  from tf_metagrad.export import native_logs  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="level must be 'quiet' or 'all'"):
    native_logs.install("loud")
  assert native_logs.FILTERED_ENV not in os.environ
