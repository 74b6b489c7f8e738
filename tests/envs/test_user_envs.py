"""The user's own environments (issue 18): `gym:<module>:<id>`,
`dm_env:<module>:<callable>`, their one-line errors, the batched actors'
path, a short training run, and the toy domains' Gymnasium ids."""

import os
import re
import subprocess
import sys
import warnings

from dm_env import specs
import gymnasium
import numpy as np
import pytest

from tests.training import procs
from tf_metagrad import envs

GYM = "gym:tests.envs.user_envs:Corridor-v0"
DM = "dm_env:tests.envs.user_envs:make_corridor"


def _one_line_error(error_type, name, **kwargs) -> str:
  with pytest.raises(error_type) as error:
    envs.make(name, **kwargs)
  message = str(error.value)
  assert "\n" not in message, message
  return message


def test_gym_module_form_imports_the_module_then_makes_the_id():
  env = envs.make(GYM, seed=0)
  assert env.observation_spec.shape == (5,)
  assert env.observation_spec.dtype.name == "float32"  # float64 converted.
  assert env.action_space == gymnasium.spaces.Discrete(2)
  obs, _ = env.reset()
  np.testing.assert_array_equal(obs, [1, 0, 0, 0, 0])
  for _ in range(3):
    obs, reward, terminated, truncated, _ = env.step(1)
    assert (reward, terminated, truncated) == (0.0, False, False)
  obs, reward, terminated, truncated, _ = env.step(1)
  np.testing.assert_array_equal(obs, [0, 0, 0, 0, 1])
  assert (reward, terminated, truncated) == (1.0, True, False)
  # Keyword arguments reach the user's class through gymnasium.make.
  assert envs.make(GYM, seed=0, length=3).observation_spec.shape == (3,)
  # Once the module is imported, the plain id is registered too.
  assert envs.make("gym:Corridor-v0", seed=0).observation_spec.shape == (5,)


def test_gym_errors_are_one_line_and_say_what_to_do():
  message = _one_line_error(ValueError, "gym:MyCorridor-v0")
  assert message.startswith("Unknown Gymnasium id 'MyCorridor-v0'")
  assert "gym:<module>:MyCorridor-v0" in message
  message = _one_line_error(ValueError, "gym:tests.envs.no_such:Corridor-v0")
  assert ("Cannot import module 'tests.envs.no_such' for Gymnasium id "
          "'Corridor-v0' (ModuleNotFoundError: No module named "
          "'tests.envs.no_such')") in message
  message = _one_line_error(ValueError,
                            "gym:tests.envs.user_envs:Corridor-v9")
  assert ("Module 'tests.envs.user_envs' was imported but Gymnasium id "
          "'Corridor-v9' is still not registered (close: Corridor-v0)"
          ) in message
  message = _one_line_error(ValueError, "gym:tests.envs.user_envs:")
  assert "names no id after the module" in message
  message = _one_line_error(ValueError, "gym:not a module:Corridor-v0")
  assert "'not a module' is not a module path" in message


def test_dm_env_continuous_actions_observations_and_episode_ends():
  env = envs.make(DM, seed=0, start=0, length=6, time_limit=4)
  assert env.observation_spec.shape == (2,)  # position () + steps_left (1,).
  assert env.observation_spec.dtype.name == "float32"
  assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (1,),
                                                  np.float32)
  obs, _ = env.reset()
  np.testing.assert_array_equal(obs, [0.0, 4.0])
  assert obs.dtype == np.float32
  obs, reward, terminated, truncated, _ = env.step(
      np.array([0.5], np.float32))
  sent = env.env.actions[-1]
  assert sent.dtype == np.float32 and sent.shape == (1,)
  assert sent[0] == 1.0  # 0.5 on [-1, 1] is 1.0 on the spec's [-2, 2].
  np.testing.assert_array_equal(obs, [1.0, 3.0])
  assert (reward, terminated, truncated) == (0.0, False, False)
  env.step(np.array([-3.0], np.float32))  # Clipped to -1, i.e. -2.
  assert env.env.actions[-1][0] == -2.0 and env.env.position == 0.0
  env.step(np.zeros(1, np.float32))
  # dm_env.truncation (discount 1) at the time limit: truncated.
  _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
  assert (terminated, truncated) == (False, True)
  with pytest.raises(RuntimeError, match="call reset"):
    env.step(np.zeros(1, np.float32))
  # dm_env.termination (discount 0) at the goal: terminated. With
  # action_repeat 2 one agent step is two moves and their rewards summed.
  env = envs.make(DM, seed=0, start=0, length=5, action_repeat=2)
  env.reset()
  _, reward, terminated, truncated, _ = env.step(np.ones(1, np.float32))
  assert len(env.env.actions) == 2 and env.env.position == 4.0
  assert (reward, terminated, truncated) == (1.0, True, False)


@pytest.mark.parametrize("spec,agent_action,sent", [
    (specs.DiscreteArray(3), 2, 2),
    (specs.BoundedArray((), np.int64, 1, 3), 0, 1),  # Offset to minimum.
    (specs.BoundedArray((1,), np.int32, -1, 1), 2, 1),
])
def test_dm_env_integer_actions_become_discrete(spec, agent_action, sent):
  env = envs.make(DM, seed=0, start=0, action_spec=spec)
  assert env.action_space == gymnasium.spaces.Discrete(3)
  env.reset()
  env.step(np.int64(agent_action))
  value = env.env.actions[-1]
  assert np.shape(value) == spec.shape and value.dtype == spec.dtype
  assert value == sent


def test_dm_env_single_array_observation_keeps_its_shape_and_int_dtype():
  env = envs.make(DM, seed=0, observation_spec=specs.Array(
      (), np.float64))
  assert env.observation_spec.shape == ()
  assert env.observation_spec.dtype.name == "float32"
  env = envs.make(DM, seed=0, observation_spec=specs.BoundedArray(
      (2, 2, 3), np.uint8, 0, 255))
  assert env.observation_spec.shape == (2, 2, 3)
  assert env.observation_spec.dtype.name == "uint8"
  # The corridor emits a dict, not the promised array: named, not reshaped.
  env = envs.make(DM, seed=0, observation_spec=specs.Array((3,), np.float32))
  with pytest.raises(ValueError) as error:
    env.reset()
  assert "\n" not in str(error.value)
  assert "does not match its observation_spec" in str(error.value)
  assert str(error.value).endswith("promises float32 (3,) after conversion.")


def test_dm_env_seeds_reach_a_callable_with_a_seed_parameter():
  first = [envs.make(DM, seed=s, length=50).reset()[0][0] for s in range(6)]
  again = [envs.make(DM, seed=s, length=50).reset()[0][0] for s in range(6)]
  assert first == again and len(set(first)) > 1
  env = envs.make(DM, seed=0, length=50)
  assert env.env.seed == 0
  env.reset(seed=7)
  assert env.env.seed == 7
  assert env.reset(seed=3)[0][0] == envs.make(DM, seed=3,
                                               length=50).reset()[0][0]
  # Without a seed parameter there is nothing to re-seed: same instance.
  unseeded = envs.make("dm_env:tests.envs.user_envs:make_unseeded", seed=0)
  built = unseeded.env
  unseeded.reset(seed=5)
  assert unseeded.env is built


@pytest.mark.parametrize("kwargs,text", [
    (dict(action_spec={"move": specs.BoundedArray((1,), float, -1, 1)}),
     "Unsupported action spec from tests.envs.user_envs:make_corridor: a "
     "dict (nested actions)"),
    (dict(action_spec=specs.Array((1,), np.float32)), "is unbounded"),
    (dict(action_spec=specs.BoundedArray((1,), float, -np.inf, 1)),
     "is unbounded"),
    (dict(action_spec=specs.BoundedArray((2,), np.int32, 0, 3)),
     "multi-discrete"),
    (dict(action_spec=specs.BoundedArray((1,), np.complex64, -1, 1)),
     "has dtype complex64"),
    (dict(observation_spec={"text": specs.StringArray(())}),
     "Unsupported observation spec from tests.envs.user_envs:make_corridor:"
     " text has dtype"),
    (dict(observation_spec={}), "an empty nest"),
    (dict(observation_spec={"a": [specs.Array((1,), float), "label"]}),
     "a/1 is a str; expected a dm_env.specs.Array"),
    (dict(reward_spec=specs.Array((2,), float)),
     "Unsupported reward spec from tests.envs.user_envs:make_corridor"),
])
def test_dm_env_unsupported_specs_are_named_on_one_line(kwargs, text):
  assert text in _one_line_error(TypeError, DM, seed=0, **kwargs)


def test_dm_env_name_errors_are_one_line():
  assert "must look like dm_env:<module>:<callable>" in _one_line_error(
      ValueError, "dm_env:tests.envs.user_envs")
  assert ("Cannot import module 'tests.envs.no_such' for the dm_env "
          "environment 'tests.envs.no_such:make' (ModuleNotFoundError"
          ) in _one_line_error(ValueError, "dm_env:tests.envs.no_such:make")
  assert "has no attribute 'nope'" in _one_line_error(
      ValueError, "dm_env:tests.envs.user_envs:nope")
  assert ("tests.envs.user_envs:Corridor.metadata is a dict, not a callable"
          ) in _one_line_error(
              TypeError, "dm_env:tests.envs.user_envs:Corridor.metadata")
  assert "returned a dict; expected a dm_env.Environment" in (
      _one_line_error(TypeError,
                      "dm_env:tests.envs.user_envs:make_not_an_env"))
  assert "unexpected keyword argument 'width'" in _one_line_error(
      TypeError, DM, width=3)


def test_cli_check_names_the_flag_on_one_line():
  from tf_metagrad.programs import cli  # pylint: disable=g-import-not-at-top
  from tf_metagrad.programs import flags_check  # pylint: disable=g-import-not-at-top
  with pytest.raises(cli.FlagError) as error:
    flags_check.environment("gym:tests.envs.no_such:Corridor-v0", [], 0)
  assert str(error.value).startswith(
      "--env=gym:tests.envs.no_such:Corridor-v0: Cannot import module")
  with pytest.raises(cli.FlagError) as error:
    flags_check.environment(DM, ["width=3"], 0)
  assert str(error.value).startswith("--env_kwargs=width=3: ")
  assert flags_check.environment(DM, ["length=7"], 0) == {"length": 7}


def test_batched_actors_step_user_envs():
  batch = envs.make_batched(GYM, 3, seed=0, length=4)
  assert batch.observation_spec.shape == (4,)
  obs = batch.reset()
  assert obs.shape == (3, 4) and obs.dtype == np.float32
  for t in range(1, 10):
    step = batch.step(np.ones(3, np.int64))  # Always right: 3 steps to go.
    ended = t % 3 == 0
    assert np.all(step.terminated == ended)
    if ended:
      np.testing.assert_array_equal(step.episode_return, [1, 1, 1])
      np.testing.assert_array_equal(step.episode_length, [3, 3, 3])
      # Auto-reset: the next episode's first observation.
      np.testing.assert_array_equal(step.observation[:, 0], [1, 1, 1])
  dm_batch = envs.make_batched(DM, 4, seed=1, length=50)
  assert dm_batch.action_space == gymnasium.spaces.Box(-1.0, 1.0, (1,),
                                                       np.float32)
  obs = dm_batch.reset()
  # Copy i equals make(..., seed=derive_seed(1, i)).
  for i in range(4):
    single = envs.make(DM, seed=envs.derive_seed(1, i), length=50)
    np.testing.assert_array_equal(obs[i], single.reset()[0])
  step = dm_batch.step(np.full((4, 1), 0.5, np.float32))
  np.testing.assert_array_equal(step.observation[:, 0], obs[:, 0] + 1.0)
  assert step.reward.dtype == np.float32


def test_register_gymnasium_ids_twice_is_silent():
  before = dict(gymnasium.registry)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    envs.register_gymnasium_ids()
  assert dict(gymnasium.registry) == before


_GYMNASIUM_ONLY = """
import gymnasium, sys
try:
  gymnasium.make("tf_metagrad/Catch-v0")
  print("plain id: made")
except gymnasium.error.Error as error:
  print("plain id:", type(error).__name__)
assert "tf_metagrad" not in sys.modules
env = gymnasium.make("tf_metagrad.envs:tf_metagrad/Catch-v0", rows=6)
print("module form:", env.reset(seed=0)[0].shape)
print("after import:", gymnasium.make("tf_metagrad/Catch-v0").spec.id)
"""


def test_gymnasium_make_without_importing_tf_metagrad():
  result = subprocess.run(
      [sys.executable, "-c", _GYMNASIUM_ONLY], cwd="/",
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  # Gymnasium 1.x loads no plugins: the plain id needs the module first.
  assert "plain id: NamespaceNotFound" in result.stdout, result.stdout
  assert "module form: (6, 5)" in result.stdout, result.stdout
  assert "after import: tf_metagrad/Catch-v0" in result.stdout


def test_trainer_runs_on_a_user_gym_env(tmp_path):
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={tmp_path / 'run'}", "--agent=impala", f"--env={GYM}",
      "--env_kwargs=length=4", "--total_env_steps=320", "--num_actors=1",
      *procs.TINY_FLAGS])
  output = procs.finish(proc, lines, timeout=300)
  assert proc.returncode == 0, output[-3000:]
  done = re.search(r"training completed: env_steps=(\d+)", output)
  assert done and int(done.group(1)) >= 320, output[-3000:]
  assert re.search(r"final_eval_mean_return=-?\d", output), output[-3000:]


def test_loop_batched_truncation_is_held_for_a_padding_step():
  """With pad_truncations a copy cut by the time limit (20 steps) returns
  its final observation, then one padding step into the next episode."""
  batch = envs.make_batched(GYM, 2, seed=0, pad_truncations=True)
  batch.reset()
  # Copy 0 stays in cell 0; copy 1 moves to cell 2, then steps left and
  # right, and is in cell 2 again at the limit.
  moves = [1, 1] + [0, 1] * 9
  for move in moves:
    step = batch.step(np.array([0, move]))
  np.testing.assert_array_equal(step.truncated, [True, True])
  np.testing.assert_array_equal(step.padding, [False, False])
  np.testing.assert_array_equal(step.episode_length, [20, 20])
  # x_final, not the reset observation.
  np.testing.assert_array_equal(step.observation.argmax(axis=1), [0, 2])
  held = batch.step(np.ones(2, np.int64))
  np.testing.assert_array_equal(held.padding, [True, True])
  np.testing.assert_array_equal(held.reward, [0.0, 0.0])
  assert not (held.terminated | held.truncated).any()
  np.testing.assert_array_equal(held.observation.argmax(axis=1), [0, 0])
  np.testing.assert_array_equal(held.episode_length, [0, 0])
  # The padding step is no environment step: the new episode counts from
  # the next one, which moves right.
  moved = batch.step(np.ones(2, np.int64))
  np.testing.assert_array_equal(moved.observation[:, 1], [1.0, 1.0])
  assert not moved.padding.any()
