"""DeepMind Control Suite tasks (STAC (Zahavy et al. 2020) section 4.2).

Two observation modes:
  * features (`dmc:<domain>-<task>`): the suite's observation dict flattened
    in the task's own key order into float32 `[D]`;
  * pixels (`dmc_pixels:<domain>-<task>`): an 84 x 84 RGB uint8
    `[84, 84, 3]` image rendered offscreen (camera 2 for quadruped, as is
    customary, camera 0 otherwise).
Actions are `Box(-1, 1)` and are mapped affinely onto the task's bounds. With
`action_repeat` R the action is applied for R physics control steps and
their rewards are summed, so episode returns stay on the suite's [0, 1000]
scale (1000 control steps of reward in [0, 1]). The suite's time limit
truncates (discount 1); a discount-0 last step terminates. These
conventions are `dm_env_adapter.DmEnvAdapter`'s, shared with the user's own
`dm_env:<module>:<callable>` environments.

Rendering backend. dm_control reads MUJOCO_GL once, when first imported. If
the variable is unset when a DMC environment is first built, each of "egl"
and "osmesa" is tried in a child process by rendering one frame, and the
first that works is exported; if none works MUJOCO_GL is set to "disabled",
feature tasks still run and pixel tasks fail with a RuntimeError that lists
what was tried. A MUJOCO_GL set by the user is always respected.
"""

import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import gymnasium
import numpy as np
import tensorflow as tf

from tf_metagrad.envs import dm_env_adapter

_PROBE = """
import os, sys
os.environ["MUJOCO_GL"] = sys.argv[1]
from dm_control import suite
env = suite.load("cartpole", "balance", task_kwargs={"random": 0})
env.reset()
image = env.physics.render(8, 8, camera_id=0)
assert image.shape == (8, 8, 3), image.shape
"""
_CANDIDATE_BACKENDS = ("egl", "osmesa")
_VIDEO_SIZE = 120  # Side of render()'s frames of a feature task.
_backend_report: List[str] = []


def _probe(backend: str) -> Tuple[bool, str]:
  try:
    result = subprocess.run([sys.executable, "-c", _PROBE, backend],
                            capture_output=True, text=True, timeout=120,
                            check=False)
  except (OSError, subprocess.TimeoutExpired) as error:
    return False, str(error)
  lines = result.stderr.strip().splitlines()
  return result.returncode == 0, (lines[-1] if lines else "")


def _choose_backend() -> None:
  """Exports a working MUJOCO_GL before dm_control is first imported."""
  if "MUJOCO_GL" in os.environ or "dm_control" in sys.modules:
    return
  for backend in _CANDIDATE_BACKENDS:
    works, message = _probe(backend)
    if works:
      os.environ["MUJOCO_GL"] = backend
      return
    _backend_report.append(f"MUJOCO_GL={backend}: {message}")
  os.environ["MUJOCO_GL"] = "disabled"


def _suite():
  _choose_backend()
  try:
    from dm_control import suite  # pylint: disable=g-import-not-at-top
  except (ImportError, AttributeError, RuntimeError) as error:
    # dm_control imports the MUJOCO_GL backend eagerly, so a broken backend
    # breaks even feature-only tasks.
    raise RuntimeError(
        f"dm_control failed to import with MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL')!r} ({error!r}). Unset MUJOCO_GL to "
        "let tf_metagrad probe egl and osmesa, or set MUJOCO_GL=disabled to "
        "run feature tasks without rendering.") from error
  return suite


def all_tasks() -> Tuple[str, ...]:
  """Every "<domain>-<task>" of the installed suite."""
  return tuple(f"{d}-{t}" for d, t in _suite().ALL_TASKS)


def _renderer_error(cause: BaseException) -> RuntimeError:
  tried = "; ".join(_backend_report) or "none (MUJOCO_GL was set by the user)"
  return RuntimeError(
      "dmc_pixels needs an offscreen OpenGL renderer, but rendering failed "
      f"with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({cause!r}). Backends "
      f"probed: {tried}. Install EGL (libegl1 plus a GPU or Mesa driver) or "
      "OSMesa (libosmesa6) and set MUJOCO_GL=egl or MUJOCO_GL=osmesa before "
      "the first dm_control import, or use dmc:<domain>-<task> (features).")


class DMCEnv(dm_env_adapter.DmEnvAdapter):
  """One DM Control task with features or pixel observations.

  Attributes:
    observation_spec: float32 `[D]` (features) or uint8
      `[image_size, image_size, 3]` (pixels).
    observation_space: the matching Box.
    action_space: `Box(-1, 1, [A], float32)`.
    env: the underlying `dm_control.rl.control.Environment`.
  """

  # Every instance renders (Gymnasium's API, for videos): nothing is drawn
  # until render() is called.
  metadata = {"render_modes": ["rgb_array"]}
  render_mode = "rgb_array"

  def __init__(self, domain: str, task: str, seed: Optional[int] = None,
               pixels: bool = False, action_repeat: int = 1,
               image_size: int = 84, camera_id: Optional[int] = None,
               environment_kwargs: Optional[Dict[str, Any]] = None) -> None:
    """Loads the task.

    Args:
      domain: suite domain, e.g. "cartpole".
      task: suite task, e.g. "swingup".
      seed: seed of the task's random state (first `reset()`); None draws one
        from OS entropy.
      pixels: observe rendered RGB images instead of features.
      action_repeat: control steps per agent step (>= 1).
      image_size: side of the square image in pixel mode.
      camera_id: camera to render; None picks 2 for quadruped, else 0.
      environment_kwargs: passed to `suite.load` (e.g. {"time_limit": 5}).

    Raises:
      ValueError: for an unknown task or a bad argument.
      RuntimeError: in pixel mode when no renderer works.
    """
    suite = _suite()
    if (domain, task) not in suite.ALL_TASKS:
      raise ValueError(
          f"Unknown DM Control task {domain}-{task}; valid tasks: "
          f"{', '.join(all_tasks())}.")
    self.domain, self.task = domain, task
    self.pixels = bool(pixels)
    self.image_size = int(image_size)
    self.camera_id = (2 if domain == "quadruped" else 0) if (
        camera_id is None) else int(camera_id)
    self._environment_kwargs = dict(environment_kwargs or {})
    family = "dmc_pixels" if self.pixels else "dmc"
    super().__init__(f"{family}:{domain}-{task}", seed=seed,
                     action_repeat=action_repeat)
    self.metadata = dict(self.metadata, render_fps=1.0 / (
        self.env.control_timestep() * self.action_repeat))
    if self.pixels:
      shape = (self.image_size, self.image_size, 3)
      self.observation_spec = tf.TensorSpec(shape, tf.uint8, "observation")
      self.observation_space = gymnasium.spaces.Box(0, 255, shape, np.uint8)
      self._render()  # Fails early, with the renderer message, if needed.

  def _build(self, seed: int):
    return _suite().load(self.domain, self.task,
                         task_kwargs={"random": seed},
                         environment_kwargs=self._environment_kwargs)

  def _render(self, size: Optional[int] = None) -> np.ndarray:
    size = size or self.image_size
    try:
      image = self.env.physics.render(size, size, camera_id=self.camera_id)
    except Exception as error:  # pylint: disable=broad-except
      # The backends raise assorted types (RuntimeError, OpenGL errors,
      # AttributeError from a missing GL library); all mean "cannot render".
      raise _renderer_error(error) from error
    return np.asarray(image, np.uint8)

  def render(self) -> np.ndarray:
    """The scene from the task's camera: the observed image in pixel mode,
    else a `[120, 120, 3]` uint8 frame.

    Raises:
      RuntimeError: when no renderer works.
    """
    return self._render(None if self.pixels else _VIDEO_SIZE)

  def _observe(self, time_step) -> np.ndarray:
    if self.pixels:
      return self._render()
    return super()._observe(time_step)
