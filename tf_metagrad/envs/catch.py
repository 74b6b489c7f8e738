"""Catch (bsuite layout; FRODO reimplementation, Qiu (2021) section 4.1.1).

A ball starts in the top row at a uniformly random column and falls one row
per step; the agent moves a paddle along the bottom row. Defaults follow
bsuite's Catch exactly (10 rows x 5 columns, paddle starting at column
columns // 2, actions 0 = left, 1 = stay, 2 = right clipped at the walls,
paddle moves before the ball, +1 / -1 when the ball reaches the bottom row,
which ends the episode after rows - 1 steps), so a policy trained here plays
bsuite's Catch unchanged. Qiu (2021) uses a "6 x 11" board without saying
which number counts rows; read rows first, as in bsuite's 10 x 5, it is
`rows=6, columns=11`.

Observation: float32 `[rows, columns]` board, 1.0 at the ball and at the
paddle (a single 1.0 when they share the bottom-row cell), 0 elsewhere.
"""

from typing import Optional

import numpy as np

from tf_metagrad.envs import toy


def _check_size(value, name: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be an int, got {type(value).__name__} "
                    f"{value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  return int(value)


class CatchCore(toy.ToyCore):
  """K copies of Catch.

  Attributes:
    ball_row, ball_column, paddle_column: int64 `[K]` positions (the paddle
      is always in row rows - 1).
  """

  def __init__(self, num_envs: int, rows: int = 10,
               columns: int = 5) -> None:
    """Builds the copies.

    Args:
      num_envs: K.
      rows: board height (>= 2); the episode lasts rows - 1 steps.
      columns: board width (>= 1).
    """
    super().__init__(num_envs)
    self.rows = _check_size(rows, "rows", 2)
    self.columns = _check_size(columns, "columns", 1)
    self.observation_shape = (self.rows, self.columns)
    self.num_actions = 3
    self.ball_row = np.zeros(self.num_envs, np.int64)
    self.ball_column = np.zeros(self.num_envs, np.int64)
    self.paddle_column = np.full(self.num_envs, self.columns // 2, np.int64)

  def _reset(self, mask: np.ndarray) -> None:
    column = self.rng.integers(self.columns, mask)[:, 0]
    self.ball_row[mask] = 0
    self.ball_column[mask] = column[mask]
    self.paddle_column[mask] = self.columns // 2

  def _step(self, actions: np.ndarray):
    self.paddle_column = np.clip(self.paddle_column + actions - 1, 0,
                                 self.columns - 1)
    self.ball_row = self.ball_row + 1
    terminated = self.ball_row == self.rows - 1
    caught = self.ball_column == self.paddle_column
    reward = np.where(terminated, np.where(caught, 1.0, -1.0), 0.0)
    return reward, terminated, np.zeros(self.num_envs, bool)

  def observe(self) -> np.ndarray:
    board = np.zeros((self.num_envs, self.rows, self.columns), np.float32)
    copies = np.arange(self.num_envs)
    board[copies, self.ball_row, self.ball_column] = 1.0
    board[copies, self.rows - 1, self.paddle_column] = 1.0
    return board


class CatchEnv(toy.ToyEnv):
  """Single Catch environment (Gymnasium id `tf_metagrad/Catch-v0`).

  Constructor: `CatchEnv(seed=None, rows=10, columns=5)`.
  """

  core_class = CatchCore

  def __init__(self, seed: Optional[int] = None, rows: int = 10,
               columns: int = 5) -> None:
    super().__init__(seed=seed, rows=rows, columns=columns)
