"""benchmarks/key_choices.py: the two-colors key tally and its analysis."""

import numpy as np

from benchmarks import key_choices
from tf_metagrad.envs import two_colors


def _core_beside_keys(toggle_every: int) -> two_colors.TwoColorsCore:
  """Three copies on a 5 x 5 grid: copy 0 one step left of key 0, copy 1
  one step left of key 1, copy 2 far from both."""
  core = two_colors.TwoColorsCore(3, size=5, toggle_every=toggle_every)
  core.seed([0, 1, 2])
  core.reset(np.ones(3, bool))
  core.keys[:] = [[0, 1], [4, 4]]
  core.keys[1] = [[4, 4], [0, 1]]
  core.keys[2] = [[4, 4], [4, 3]]
  core.goal[:] = [2, 2]
  core.agent[:] = [[0, 0], [0, 0], [0, 0]]
  core.keys_present[:] = True
  core.has_key[:] = False
  return core


def test_tally_counts_keys_only_while_installed():
  # Copy 0 takes key 0 (0.7) and copy 1 key 1 (0.3): one better, one worse.
  original = two_colors.TwoColorsCore._step  # pylint: disable=protected-access
  core = _core_beside_keys(toggle_every=100)
  tally = key_choices.KeyTally()
  with tally.installed():
    core.step(np.array([3, 3, 0]))  # right, right, up (clipped, no key).
  assert tally.rows == [(3, 1, 1)]
  assert two_colors.TwoColorsCore._step is original  # pylint: disable=protected-access
  core = _core_beside_keys(toggle_every=100)
  core.step(np.array([3, 3, 0]))
  assert tally.rows == [(3, 1, 1)]


def test_tally_tells_better_from_worse_by_the_current_values():
  core = _core_beside_keys(toggle_every=100)
  core.keys[1] = core.keys[0]  # Copy 1 also next to key 0 now.
  tally = key_choices.KeyTally()
  with tally.installed():
    core.step(np.array([3, 3, 0]))
  assert tally.rows == [(3, 2, 0)]
  core = _core_beside_keys(toggle_every=1)
  core.keys[1] = core.keys[0]
  core.total_steps[:] = 1  # Key 0 is worth 0.3 in phase 1.
  tally = key_choices.KeyTally()
  with tally.installed():
    core.step(np.array([3, 3, 0]))
  assert tally.rows == [(3, 0, 2)]


def test_fraction_alignment_and_recovery_on_a_known_curve(tmp_path):
  choices = np.array([[5, 3, 1], [15, 0, 4], [17, 1, 0], [35, 2, 2]])
  fraction = key_choices.better_fraction(choices, np.array([0, 10, 20, 30,
                                                            40]))
  np.testing.assert_allclose(fraction, [0.75, 0.2, np.nan, 0.5])
  tally = key_choices.KeyTally()
  tally.rows = [tuple(r) for r in choices.tolist()]
  tally.write(str(tmp_path))
  np.testing.assert_array_equal(key_choices.read_choices(str(tmp_path)),
                                choices)
  # A curve that drops to 0 at each toggle (100, 200) and climbs by 0.1
  # per 10 steps: back at 0.5 fifty steps after either toggle.
  centers = np.arange(5, 300, 10.0)
  curve = np.where(centers < 100, 1.0, np.minimum(
      1.0, ((centers - 5) % 100) / 100))
  offsets = np.arange(-5, 95, 10.0)
  aligned = key_choices.aligned(curve, centers, [100, 200], offsets)
  np.testing.assert_allclose(aligned[1:], np.arange(0, 0.9, 0.1),
                             atol=1e-12)
  assert key_choices.recovery_steps(aligned, offsets, 0.5) == 55.0
  assert np.isnan(key_choices.recovery_steps(aligned, offsets, 0.95))
