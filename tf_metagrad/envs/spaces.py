"""Action conventions shared by the continuous-control adapters.

Agents emit continuous actions in [-1, 1] (STAC (Zahavy et al. 2020)
section 4.2: a tanh-squashed Gaussian); adapters map them affinely onto the
environment's own bounds.
"""

from typing import Sequence

import gymnasium
import numpy as np
import numpy.typing as npt


def unit_box(shape: Sequence[int]) -> gymnasium.spaces.Box:
  """`Box(-1, 1, shape, float32)`, the action space agents see."""
  return gymnasium.spaces.Box(-1.0, 1.0, tuple(shape), np.float32)


def rescale_action(action: npt.ArrayLike, low: np.ndarray,
                   high: np.ndarray) -> np.ndarray:
  """Maps a [-1, 1] action onto [low, high]: low + (a + 1) (high - low) / 2.

  Args:
    action: array of the bounds' shape; entries outside [-1, 1] are clipped.
    low: finite lower bounds.
    high: finite upper bounds.

  Returns:
    float64 array in [low, high].

  Raises:
    ValueError: if the shape differs from the bounds' or an entry is NaN.
  """
  action = np.asarray(action, np.float64)
  if action.shape != np.shape(low):
    raise ValueError(f"action must have shape {np.shape(low)}, got "
                     f"{action.shape}.")
  if np.isnan(action).any():
    raise ValueError(f"action must not contain NaN, got {action}.")
  unit = np.clip(action, -1.0, 1.0)
  return low + (unit + 1.0) * 0.5 * (high - low)
