"""The stderr filter of our programs drops the known C++ noise, passes the
rest in order, and keeps the last lines of a process that aborts."""

import os
import subprocess
import sys

import pytest

from tests.training import procs

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
from tf_metagrad.system import native_logs
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
          "from tf_metagrad.system import native_logs\n"
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
  # pylint: disable-next=g-import-not-at-top
  from tf_metagrad.system import native_logs
  with pytest.raises(ValueError, match="level must be 'quiet' or 'all'"):
    native_logs.install("loud")
  assert native_logs.FILTERED_ENV not in os.environ


# Reverb's pieces as its unbuffered std::cerr writes them (one write per
# `<<`, strace of a real run): two clients' lines interleave when they start
# on two threads at once.
def _reverb_pieces(table):
  return ["[", "reverb/cc/client.cc", ":", "165", "] ",
          "Sampler and server are owned by the same process (", "16512",
          ") so Table ", table, " is accessed directly without gRPC.", "\n"]


_INTERLEAVED = r"""
import os, sys
from tf_metagrad.system import native_logs
native_logs.install(sys.argv[1])
a, b, c, pieces = %r
for piece in a[:6] + b + a[6:]:
  os.write(2, piece.encode())
# A whole line of another writer landing in the middle of a Reverb line.
for piece in c[:6] + ["E tensorflow/core/x.cc:1] A real error\n"] + c[6:]:
  os.write(2, piece.encode())
for piece in pieces:
  os.write(2, piece.encode())
os.write(2, b"[reverb/cc/client.cc:99] Weights 3 [x] are not noise\n")
"""


def test_interleaved_reverb_lines_are_dropped_and_other_lines_kept():
  pieces = ["[reverb/cc/platform/default/server.cc", ":71] ",
            "Started replay server on port ", "41", "\n",
            "[reverb/cc/platform/tfrecord_checkpointer.cc:162] ",
            " Initializing TFRecordCheckpointer in ", "/tmp/tmpszuawkph",
            ".", "\n", "[reverb/cc/platform/default/server.cc:84] ",
            "Shutting down replay server", "\n"]
  parts = (_reverb_pieces("weights"), _reverb_pieces("trajectories"),
           _reverb_pieces("weights_version"), pieces)
  lines = {}
  for level in ("quiet", "all"):
    result = subprocess.run(
        [sys.executable, "-c", _INTERLEAVED % (parts,), level],
        cwd=procs.ROOT, env=procs.environment(), capture_output=True,
        text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines[level] = result.stderr.splitlines()
  # Unfiltered, the interleaving cuts a line in two, as seen in piped runs.
  assert "16512) so Table weights is accessed directly without gRPC." in (
      lines["all"])
  glued = ("[reverb/cc/client.cc:165] Sampler and server are owned by the "
           "same process (E tensorflow/core/x.cc:1] A real error")
  assert lines["quiet"] == [
      glued, "[reverb/cc/client.cc:99] Weights 3 [x] are not noise"]


_CHECKPOINT_INDEX = r"""
import os, sys
from tf_metagrad.system import native_logs
native_logs.install(sys.argv[1])
from absl import logging
import tensorflow as tf
logging.use_absl_handler()  # As absl.app.run does in our programs.
directory = sys.argv[2]
with open(os.path.join(directory, "checkpoint"), "w") as f:
  f.write("\x00garbage{")
assert tf.train.latest_checkpoint(directory) is None
assert tf.train.CheckpointManager(tf.train.Checkpoint(), directory,
                                  max_to_keep=1).latest_checkpoint is None
tf.get_logger().warning("a TensorFlow warning that is kept")
"""


def test_checkpoint_index_warnings_are_dropped(tmp_path):
  stderr = {}
  for level in ("quiet", "all"):
    result = subprocess.run(
        [sys.executable, "-c", _CHECKPOINT_INDEX, level, str(tmp_path)],
        cwd=procs.ROOT, env=procs.environment(), capture_output=True,
        text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    stderr[level] = result.stderr
  assert stderr["all"].count("checkpoint_management.py") == 4, stderr["all"]
  assert "Checkpoint ignored" in stderr["all"]
  assert "checkpoint_management" not in stderr["quiet"]
  assert "Checkpoint ignored" not in stderr["quiet"]
  assert "ParseError" not in stderr["quiet"]
  assert "a TensorFlow warning that is kept" in stderr["quiet"]


_ALE = r"""
import os, sys
from tf_metagrad.system import native_logs
native_logs.install(sys.argv[1])
import ale_py
ale_py.ALEInterface()  # Prints ALE's banner at the default logger mode.
os.write(2, b"kept\n")
"""


def test_ale_banner_is_dropped_and_not_printed_by_atari_envs():
  stderr = {}
  for level in ("quiet", "all"):
    result = subprocess.run(
        [sys.executable, "-c", _ALE, level], cwd=procs.ROOT,
        env=procs.environment(), capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    stderr[level] = result.stderr
  assert "A.L.E: Arcade Learning Environment (version " in stderr["all"]
  assert "[Powered by Stella]" in stderr["all"]
  assert stderr["quiet"] == "kept\n"
  # Without any filter: the env lowers ALE's logger before the banner.
  code = ("from tf_metagrad import envs\n"
          "envs.make('atari:Pong', seed=0).reset()\n"
          "envs.make('atari:Pong', seed=1).reset()\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=procs.ROOT,
                          env=procs.environment(), capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "A.L.E" not in result.stderr + result.stdout
  assert "Stella" not in result.stderr + result.stdout
