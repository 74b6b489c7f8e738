"""`strategies.configure_threads` (--inter_op_threads, --intra_op_threads)."""

import subprocess
import sys

import pytest

from tf_metagrad.distribute import strategies

# In a fresh interpreter: TF's thread pools can be sized only before the
# runtime starts, which this test process has long done.
_SCRIPT = """
import tensorflow as tf
from tf_metagrad.distribute import strategies
strategies.configure_threads(3, 1)
print(tf.config.threading.get_inter_op_parallelism_threads(),
      tf.config.threading.get_intra_op_parallelism_threads())
print(float(tf.constant(1.0) + 1.0))
try:
  strategies.configure_threads(0, 2)
except ValueError as e:
  print(e)
"""


def test_pools_are_sized_before_the_first_op_and_refused_after():
  result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True,
                          text=True, timeout=120, check=True)
  assert result.stdout.splitlines() == [
      "3 1", "2.0",
      "thread pools can only be sized before TensorFlow runs its first op"]


@pytest.mark.parametrize("inter, intra", [(-1, 0), (0, 1.5), (None, 0)])
def test_bad_sizes_are_refused_in_one_line(inter, intra):
  with pytest.raises(ValueError, match=r"threads must be an int >= 0"):
    strategies.configure_threads(inter, intra)
