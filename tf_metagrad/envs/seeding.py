"""Seeds and vectorised random streams shared by every environment.

Two facts make batched and single environments agree step for step:

* copy `i` of a batch built from `seed` uses `derive_seed(seed, i)`, the same
  integer a caller passes to `make(name, seed=derive_seed(seed, i))`;
* the toy domains draw randomness from `CounterRandom`, where the n-th number
  of a stream is a pure function of (stream key, n). A batch of K streams is
  therefore K independent streams that never interact, yet all of them are
  drawn with one numpy expression (no Python loop over copies).
"""

import secrets
from typing import Optional, Sequence, Union

import numpy as np

# Largest seed handed out: ALE stores its seed in a signed 32-bit int and
# dm_control / gymnasium accept any non-negative int, so 31 bits fit all.
MAX_SEED = 2**31 - 1

# SplitMix64 constants (Steele, Lea and Flood 2014): the Weyl increment and the
# two multipliers of the output finaliser.
_WEYL = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_U64 = np.uint64


def check_seed(seed: Union[int, np.integer], name: str = "seed") -> int:
  if isinstance(seed, (bool, np.bool_)) or not isinstance(
      seed, (int, np.integer)):
    raise TypeError(f"{name} must be a non-negative int or None, got "
                    f"{type(seed).__name__} {seed!r}.")
  if seed < 0:
    raise ValueError(f"{name} must be a non-negative int, got {seed}.")
  return int(seed)


def fresh_seed() -> int:
  """Returns an OS-entropy seed in [0, MAX_SEED] for `seed=None`."""
  return secrets.randbelow(MAX_SEED + 1)


def derive_seed(seed: int, index: int) -> int:
  """Seed of copy `index` in a batch built from `seed`.

  Args:
    seed: the batch seed (non-negative int).
    index: the copy's position in the batch (non-negative int).

  Returns:
    An int in [0, MAX_SEED], a deterministic function of (seed, index) that
    numpy's `SeedSequence` spreads over the whole range, so neighbouring
    indices or seeds give unrelated streams.

  Raises:
    TypeError / ValueError: if `seed` or `index` is not a non-negative int.
  """
  seed = check_seed(seed)
  index = check_seed(index, "index")
  state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(
      1, np.uint32)
  return int(state[0] >> 1)


def stream_key(seed: int) -> np.uint64:
  """64-bit key of the `CounterRandom` stream that `seed` selects."""
  seed = check_seed(seed)
  return np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]


def _finalise(z: np.ndarray) -> np.ndarray:
  z = (z ^ (z >> _U64(30))) * _MUL1
  z = (z ^ (z >> _U64(27))) * _MUL2
  return z ^ (z >> _U64(31))


class CounterRandom:
  """K independent random streams advanced together.

  Stream i's n-th uniform is SplitMix64's n-th output for state key_i:
  finalise(key_i + (n + 1) * WEYL), top 53 bits scaled to [0, 1). A stream's
  draws depend only on its key and on how many numbers it has consumed, so
  copy i of a batch draws exactly what a lone copy with the same key draws.
  """

  def __init__(self, keys: Sequence[int]) -> None:
    self._keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    self._counters = np.zeros_like(self._keys)

  @property
  def num_streams(self) -> int:
    return self._keys.shape[0]

  def uniform(self, mask: Optional[np.ndarray] = None,
              num: int = 1) -> np.ndarray:
    """Draws `num` uniforms in [0, 1) per stream.

    Args:
      mask: optional bool `[K]`; only streams where it is True consume
        numbers (rows of the result where it is False are 0).
      num: how many numbers each stream draws.

    Returns:
      float64 `[K, num]`.
    """
    rows = (np.arange(self.num_streams) if mask is None else
            np.flatnonzero(mask))
    offsets = np.arange(1, num + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
      position = self._counters[rows, None] + offsets[None, :]
      bits = _finalise(self._keys[rows, None] + position * _WEYL)
    self._counters[rows] += _U64(num)
    draws = np.zeros((self.num_streams, num), np.float64)
    draws[rows] = (bits >> _U64(11)).astype(np.float64) * (2.0**-53)
    return draws

  def integers(self, high: int, mask: Optional[np.ndarray] = None,
               num: int = 1) -> np.ndarray:
    """Draws `num` ints uniformly in [0, high) per stream, int64 `[K, num]`."""
    draws = np.floor(self.uniform(mask, num) * high).astype(np.int64)
    return np.minimum(draws, high - 1)
