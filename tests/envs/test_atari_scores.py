"""Reference Atari-57 scores and human-normalised scores."""

import pytest

from tf_metagrad.envs import atari
from tf_metagrad.envs import atari_scores


def test_table_covers_the_57_games_with_roms():
  assert len(atari_scores.ATARI_57) == 57
  assert set(atari_scores.ATARI_57) <= set(atari.available_games())
  assert atari_scores.RANDOM_SCORES["pong"] == -20.7
  assert atari_scores.HUMAN_SCORES["pong"] == 14.6
  assert atari_scores.RANDOM_SCORES["breakout"] == 1.7
  assert atari_scores.HUMAN_SCORES["breakout"] == 30.5
  assert atari_scores.HUMAN_SCORES["montezuma_revenge"] == 4753.3
  assert all(atari_scores.HUMAN_SCORES[g] > atari_scores.RANDOM_SCORES[g]
             for g in atari_scores.ATARI_57)


def test_human_normalized_score():
  assert atari_scores.human_normalized_score("Pong", -20.7) == 0.0
  assert atari_scores.human_normalized_score("pong", 14.6) == pytest.approx(1)
  assert atari_scores.human_normalized_score("Pong", 21.0) == pytest.approx(
      (21.0 + 20.7) / (14.6 + 20.7))
  assert atari_scores.human_normalized_score(
      "SpaceInvaders", 1668.7) == pytest.approx(1.0)
  many = atari_scores.human_normalized_score("Breakout", [1.7, 30.5, 59.3])
  assert many.tolist() == pytest.approx([0.0, 1.0, 2.0])
  with pytest.raises(ValueError, match="57 games"):
    atari_scores.human_normalized_score("Adventure", 1.0)


def test_median_human_normalized_score():
  scores = {"Pong": 14.6, "Breakout": 59.3, "alien": 227.8}
  # HNS values 1, 2 and 0: the median is 1.
  assert atari_scores.median_human_normalized_score(scores) == pytest.approx(
      1.0)
  scores["boxing"] = 24.1  # HNS 2.0: median of {0, 1, 2, 2} is 1.5.
  assert atari_scores.median_human_normalized_score(scores) == pytest.approx(
      1.5)
  with pytest.raises(ValueError, match="twice"):
    atari_scores.median_human_normalized_score({"Pong": 0.0, "pong": 1.0})
  with pytest.raises(ValueError, match="at least one"):
    atari_scores.median_human_normalized_score({})
