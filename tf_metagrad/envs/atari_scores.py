"""Reference scores of the 57 Atari games and human-normalised scores.

The random and human scores are the standard Atari-57 reference table used
by DQN (Mnih et al. 2015), its successors and Agent57 (Badia et al. 2020):
episodes start with up to 30 no-ops and are capped at 108,000 frames.
Video Pinball uses the DQN random score 16,256.9 (some later papers report 0
for it); the other 56 entries agree across those papers.

Human-normalised score (Yin et al. (2023) section 5.2):
  HNS = (R - R_random) / (R_human - R_random).
Games are keyed by ale-py ROM id ("space_invaders"); every function also
accepts the CamelCase name ("SpaceInvaders").
"""

from typing import Mapping, Tuple, Union

import numpy as np
import numpy.typing as npt

from tf_metagrad.envs import atari

# ROM id: (random score, human score).
_REFERENCE = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

ATARI_57: Tuple[str, ...] = tuple(sorted(_REFERENCE))
RANDOM_SCORES: Mapping[str, float] = {g: s[0] for g, s in _REFERENCE.items()}
HUMAN_SCORES: Mapping[str, float] = {g: s[1] for g, s in _REFERENCE.items()}


def _game_key(game: str) -> str:
  key = atari.rom_id(game)
  if key not in _REFERENCE:
    raise ValueError(f"game {game!r} is not one of the 57 games with "
                     f"reference scores: {', '.join(ATARI_57)}.")
  return key


def human_normalized_score(
    game: str, raw_score: npt.ArrayLike) -> Union[float, np.ndarray]:
  """HNS = (R - R_random) / (R_human - R_random), Yin et al. (2023) section 5.2.

  Args:
    game: ROM id or CamelCase name of one of the 57 games.
    raw_score: raw (unclipped) episode return, a float or an array of them.

  Returns:
    A float for a scalar `raw_score`, else a float64 array of its shape.

  Raises:
    ValueError: if `game` has no reference scores.
  """
  random_score, human_score = _REFERENCE[_game_key(game)]
  hns = (np.asarray(raw_score, np.float64) - random_score) / (
      human_score - random_score)
  return float(hns) if hns.ndim == 0 else hns


def median_human_normalized_score(scores: Mapping[str, float]) -> float:
  """Median over games of the human-normalised score.

  Args:
    scores: game name -> raw score (typically all 57 games).

  Returns:
    The median HNS (the mean of the two middle values for an even count).

  Raises:
    ValueError: if `scores` is empty, names a game twice (e.g. "Pong" and
      "pong") or names a game without reference scores.
  """
  if not scores:
    raise ValueError("scores must map at least one game to a raw score.")
  normalized = {}
  for game, raw in scores.items():
    key = _game_key(game)
    if key in normalized:
      raise ValueError(f"scores names game {key!r} twice.")
    normalized[key] = human_normalized_score(key, float(raw))
  return float(np.median(list(normalized.values())))
