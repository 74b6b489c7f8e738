"""How a training session runs (`Options`), and the checks of its values.

The checks live here alone: `Options` runs them when it is made (and when
`dataclasses.replace` makes a new one), and the trainer program runs them on
its flags before it imports TensorFlow (`check` takes the values without an
`Options`), naming its flags instead of the fields (`OptionError.describe`).
This module imports nothing heavy for that reason.
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional


class OptionError(ValueError):
  """An option outside its range or at odds with another option.

  Args:
    option: the field name.
    value: its value.
    expected: what it should be; "{other}" in it stands for the name of the
      option `other`.
    other: the option `expected` refers to, if any.
  """

  def __init__(self, option: str, value: Any, expected: str,
               other: Optional[str] = None) -> None:
    self.option = option
    self.value = value
    self._expected = expected
    self._other = other
    super().__init__(self.describe(lambda name: name))

  def describe(self, name: Callable[[str], str]) -> str:
    """The message, with each option called `name(field name)` (a program
    passes its flags' names)."""
    expected = self._expected.format(
        other=name(self._other) if self._other else "")
    return f"{name(self.option)}={self.value}: expected {expected}"


def check(values: Mapping[str, Any]) -> None:
  """Checks the options among `values` (field name -> value; fields left
  out are not checked).

  Raises:
    OptionError: for the first option found wrong.
  """
  def given(name):
    return name in values and values[name] is not None

  if given("steps_per_call") and values["steps_per_call"] < 1:
    raise OptionError("steps_per_call", values["steps_per_call"],
                      "an integer >= 1")
  if given("actor_nice"):
    nice = values["actor_nice"]
    if not 0 <= nice <= 19:
      raise OptionError("actor_nice", nice, "an integer in [0, 19]")
    processes = values.get("num_actor_processes", 0)
    if nice and processes < 1:
      raise OptionError(
          "actor_nice", nice, f"{{other}} >= 1 too (actor threads share the "
          f"learner's priority), got {processes}", other="num_actor_processes")
  if given("eval_every_env_steps"):
    every = values["eval_every_env_steps"]
    if every < 0:
      raise OptionError("eval_every_env_steps", every, "an integer >= 0")
    episodes = values.get("eval_episodes", 1)
    if every and episodes < 1:
      raise OptionError("eval_every_env_steps", every,
                        f"{{other}} >= 1 too, got {episodes}",
                        other="eval_episodes")


@dataclasses.dataclass(frozen=True)
class Options:
  """Everything `tf_metagrad.programs.train`'s flags decide about a session
  (`training.resolve` fills them from a preset). Checked when made, and
  frozen so that it stays checked (`dataclasses.replace` checks again)."""

  logdir: str
  total_env_steps: int
  unroll_length: int
  batch_size: int
  num_actors: int = 2
  num_actor_processes: int = 0
  envs_per_actor: int = 32
  reverb_port: Optional[int] = None
  queue_capacity: Optional[int] = None  # Items; see server.queue_capacity.
  weights_every: int = 1
  weights_min_interval_s: float = 0.1
  actor_refresh_every: int = 1
  data_timeout_s: float = 10.0
  max_data_wait_s: float = 600.0
  log_every_s: float = 5.0
  summary_every_s: float = 10.0
  checkpoint_every_s: float = 120.0
  eval_episodes: int = 20
  export: bool = True
  steps_per_call: int = 1  # Learner steps per tf.function call.
  eval_every_env_steps: int = 0  # Periodic greedy evaluation (0: none).
  preset: Optional[str] = None  # Recorded in run_spec.json only.
  # Steps between an actor's consecutive items, in [1, item unroll length];
  # None: the item unroll length (no overlap). See `system.reverb_actor`.
  unroll_stride: Optional[int] = None
  # CPU priority the actor processes lower themselves by (nice, 0-19).
  actor_nice: int = 0

  def __post_init__(self) -> None:
    check(dataclasses.asdict(self))
