"""Atari 2600 through ale-py with the IMPALA / STAC / DrMG protocol.

Protocol (Yin et al. (2023) section 5.2, Zahavy et al. (2020) section 4.1), all configurable:
  * observation: the last `frame_stack` (4) processed frames, uint8
    `[84, 84, 4]`; a processed frame is the pixel-wise max of the last two
    emulator frames of a step (removes sprite flicker), converted to ALE's
    grayscale and area-resized from 210 x 160 to 84 x 84;
  * action repeat 4, sticky actions off (repeat_action_probability = 0);
  * no episodic life: losing a life does not end the episode (`info["lives"]`
    reports it);
  * an episode is truncated once it has used `max_episode_frames` (108,000)
    emulator frames, no-op frames included; a step stops repeating its
    action as soon as the cap is hit, so the cap is exact;
  * no-op starts: after each game reset the env plays n NOOP emulator frames,
    n uniform in {1, ..., noop_max} (noop_max = 30; 0 disables), as in the
    DQN evaluation protocol behind the human / random reference scores.
    They are single frames, not repeated agent steps, and count towards the
    frame cap; `info["noop_frames"]` reports n after reset;
  * action set: the game's minimal action set by default (fewer logits, the
    usual IMPALA-style setup); `full_action_space=True` gives all 18;
  * rewards are the raw game score changes, summed over the repeated frames
    and never clipped (the learner clips; raw scores feed the human-
    normalised score in `atari_scores`).
"""

import re
from typing import Any, Dict, Optional, Tuple, Union

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad.envs import seeding

_SCREEN_HEIGHT, _SCREEN_WIDTH = 210, 160
_EMULATOR_FPS = 60.0


def rom_id(game: str) -> str:
  """ale-py ROM id of a game name: "SpaceInvaders" or "space_invaders"."""
  if not isinstance(game, str) or not game:
    raise ValueError(f"game must be a non-empty string, got {game!r}.")
  if "_" in game or game.islower():
    return game.lower()
  return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def available_games() -> Tuple[str, ...]:
  """ROM ids shipped with the installed ale-py wheel."""
  from ale_py import roms  # pylint: disable=g-import-not-at-top
  return tuple(sorted(roms.get_all_rom_ids()))


def area_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """Row-stochastic `[out_size, in_size]` matrix of area interpolation.

  Output pixel j covers the input interval [j * s, (j + 1) * s) with
  s = in_size / out_size, and averages the input pixels weighted by their
  overlap with it (what OpenCV calls INTER_AREA when shrinking). A 2-D
  resize is then `rows @ image @ columns.T`.
  """
  scale = in_size / out_size
  starts = np.arange(out_size)[:, None] * scale
  pixel = np.arange(in_size)[None, :]
  overlap = np.clip(
      np.minimum(starts + scale, pixel + 1) - np.maximum(starts, pixel), 0.0,
      None)
  return (overlap / scale).astype(np.float32)


class AtariEnv(gymnasium.Env):
  """One Atari game with the protocol in the module docstring.

  Attributes:
    observation_spec: `tf.TensorSpec([84, 84, frame_stack], tf.uint8)`.
    observation_space: the matching `Box(0, 255)`.
    action_space: `Discrete(len(action_set))`.
    action_set: the ALE actions that indices of `action_space` map to.
    ale: the underlying `ale_py.ALEInterface`.
  """

  # Every instance renders (Gymnasium's API, for videos): render() only
  # reads the frame that reset() or step() has already processed.
  metadata = {"render_modes": ["rgb_array"]}
  render_mode = "rgb_array"

  def __init__(self, game: str, seed: Optional[int] = None,
               noop_max: int = 30, action_repeat: int = 4,
               frame_stack: int = 4, max_episode_frames: int = 108_000,
               full_action_space: bool = False, screen_size: int = 84,
               repeat_action_probability: float = 0.0) -> None:
    """Loads the ROM.

    Args:
      game: "Pong", "SpaceInvaders" or an ale-py ROM id ("space_invaders").
      seed: seed of the first `reset()`; None draws one from OS entropy.
      noop_max: most NOOP frames played after a game reset (0 disables).
      action_repeat: emulator frames per agent step.
      frame_stack: processed frames stacked on the last axis.
      max_episode_frames: emulator-frame cap per episode (truncation).
      full_action_space: use all 18 actions instead of the minimal set.
      screen_size: side of the square processed frame.
      repeat_action_probability: ALE sticky-action probability (0 in the
        protocol).

    Raises:
      ValueError: for an unknown game or an out-of-range argument.
    """
    import ale_py  # pylint: disable=g-import-not-at-top
    from ale_py import roms  # pylint: disable=g-import-not-at-top
    self.game = rom_id(game)
    if self.game not in roms.get_all_rom_ids():
      raise ValueError(f"Unknown Atari game {game!r}; ale-py ships: "
                       f"{', '.join(available_games())}.")
    for name, value, minimum in (("noop_max", noop_max, 0),
                                 ("action_repeat", action_repeat, 1),
                                 ("frame_stack", frame_stack, 1),
                                 ("max_episode_frames", max_episode_frames, 1),
                                 ("screen_size", screen_size, 1)):
      if isinstance(value, bool) or not isinstance(
          value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got "
                         f"{value!r}.")
    if not 0.0 <= repeat_action_probability <= 1.0:
      raise ValueError(f"repeat_action_probability must lie in [0, 1], got "
                       f"{repeat_action_probability}.")
    self.noop_max = int(noop_max)
    self.action_repeat = int(action_repeat)
    self.metadata = dict(self.metadata,
                         render_fps=_EMULATOR_FPS / self.action_repeat)
    self.frame_stack = int(frame_stack)
    self.max_episode_frames = int(max_episode_frames)
    self.full_action_space = bool(full_action_space)
    self._repeat_action_probability = float(repeat_action_probability)
    self._rom_path = roms.get_rom_path(self.game)
    # The mode is process-wide and the constructor prints ALE's banner
    # ("A.L.E: Arcade Learning Environment...", "[Powered by Stella]") at
    # Info level, so it is lowered before the first interface exists.
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    self.ale = ale_py.ALEInterface()
    self._initial_seed = (seeding.fresh_seed() if seed is None else
                          seeding.check_seed(seed))
    self._load(self._initial_seed)
    self.action_set = (self.ale.getLegalActionSet() if full_action_space
                       else self.ale.getMinimalActionSet())
    self._noop = ale_py.Action.NOOP
    shape = (screen_size, screen_size, self.frame_stack)
    self.observation_spec = tf.TensorSpec(shape, tf.uint8, "observation")
    self.observation_space = gymnasium.spaces.Box(0, 255, shape, np.uint8)
    self.action_space = gymnasium.spaces.Discrete(len(self.action_set))
    self._resize_rows = area_resize_matrix(_SCREEN_HEIGHT, screen_size)
    self._resize_columns = area_resize_matrix(_SCREEN_WIDTH, screen_size).T
    self._screens = np.zeros((2, _SCREEN_HEIGHT, _SCREEN_WIDTH), np.uint8)
    self._stack = np.zeros(shape, np.uint8)
    self._episode_frames = 0
    self._needs_reset = True
    self._rng = np.random.default_rng(self._initial_seed)

  def _load(self, seed: int):
    self.ale.setInt("random_seed", seed)
    self.ale.setFloat("repeat_action_probability",
                      self._repeat_action_probability)
    self.ale.loadROM(self._rom_path)

  def _process(self, screens: np.ndarray) -> np.ndarray:
    frame = screens.max(axis=0).astype(np.float32)
    resized = self._resize_rows @ frame @ self._resize_columns
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)

  def _push(self, frame: np.ndarray):
    self._stack = np.roll(self._stack, -1, axis=-1)
    self._stack[..., -1] = frame

  def _act(self, action) -> float:
    self._episode_frames += 1
    return float(self.ale.act(action))

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
            ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Resets the game, plays the no-op start and returns the first stack."""
    del options  # No reset options.
    if seed is not None:
      seed = seeding.check_seed(seed)
      self._load(seed)
      self._rng = np.random.default_rng(seed)
    super().reset(seed=seed)
    self.ale.reset_game()
    self._episode_frames = 0
    noops = int(self._rng.integers(1, self.noop_max + 1)) if (
        self.noop_max) else 0
    for _ in range(noops):
      self._act(self._noop)
      if self.ale.game_over():
        self.ale.reset_game()
    self.ale.getScreenGrayscale(self._screens[0])
    self._screens[1] = self._screens[0]
    frame = self._process(self._screens)
    self._stack[...] = frame[..., None]
    self._needs_reset = False
    return self._stack.copy(), self._info(noop_frames=noops)

  def step(self, action: Union[int, np.integer]
           ) -> Tuple[np.ndarray, float, bool, bool, Dict[str, Any]]:
    """Repeats `action` for up to `action_repeat` frames."""
    if self._needs_reset:
      raise RuntimeError("AtariEnv.step called before reset() or after the "
                         "episode ended; call reset() first.")
    index = np.asarray(action)
    if index.ndim != 0 or not np.issubdtype(index.dtype, np.integer) or (
        not 0 <= index < self.action_space.n):
      raise ValueError(f"action must be an int in [0, {self.action_space.n}),"
                       f" got {action!r}.")
    ale_action = self.action_set[int(index)]
    reward = 0.0
    terminated = truncated = False
    captured = 0
    for repeat in range(self.action_repeat):
      reward += self._act(ale_action)
      terminated = self.ale.game_over()
      truncated = (not terminated and
                   self._episode_frames >= self.max_episode_frames)
      last = terminated or truncated or repeat == self.action_repeat - 1
      if last or repeat == self.action_repeat - 2:
        self.ale.getScreenGrayscale(self._screens[captured % 2])
        captured += 1
      if last:
        break
    if captured == 1:
      # Only one frame of this step was read (it ended early or repeats
      # once), so max-pooling falls back to that frame alone.
      self._screens[1] = self._screens[0]
    self._push(self._process(self._screens))
    self._needs_reset = terminated or truncated
    return self._stack.copy(), reward, terminated, truncated, self._info()

  def render(self) -> np.ndarray:
    """The newest processed frame of the stack (what the agent saw last),
    as gray `[screen_size, screen_size, 3]` uint8."""
    return np.repeat(self._stack[..., -1:], 3, axis=-1)

  def _info(self, **extra) -> Dict[str, Any]:
    info = {"lives": self.ale.lives(),
            "episode_frame_number": self._episode_frames}
    info.update(extra)
    return info
