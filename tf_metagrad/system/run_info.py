"""What an actor must know to feed a run, published through its Reverb server.

The learner describes its run (`describe`) and publishes the description
(`publish`) as the one item of the server's "run_info" table right after the
server starts. A remote actor (`trainers.actor --reverb_address=HOST:PORT`)
reads it (`read`) to build the learner's environment and network and to
write items of the queue's signature, so none of the run's settings has to
be repeated on the actor's command line. After the server was gone, the
actor reads it again: another `run_id` is a restarted learner, and
`RunInfo.differences` says whether that learner still takes its items.

The item is JSON text, and whoever reaches the port can replace it.
Parsing JSON, unlike unpickling, runs no code, but what the text says can:
an environment name such as `dm_env:<module>:<callable>` or
`gym:<module>:<id>` imports a module, and `dm_env:subprocess:check_call`
runs its env_kwargs as a command. Nothing here builds the environment; the
actor (`trainers.actor`) builds one whose name imports a module
(`envs.registry.imports_user_code`) only when its own --env names it.
"""

import dataclasses
import json
import time
import typing
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

FORMAT = 1  # Bumped when a field changes meaning; a reader refuses others.
# One run-info sample; the item is small, so this is a hang guard only.
_SAMPLE_TIMEOUT_S = 10.0
# Fields an actor builds its environment, network and items from: a
# restarted learner that differs in one of them needs another actor.
_ACTOR_BUILT_FROM = ("agent", "env", "env_kwargs", "config_overrides",
                     "derived_config", "unroll_length", "unroll_stride",
                     "item_signature")


class RunInfoError(ValueError):
  """The server holds no usable run info (no such table, unreadable text)."""


def _published(value: Any) -> Any:
  """`value` as JSON gives it back (tuples become lists)."""
  return json.loads(json.dumps(value))


def _untuple(values: Dict[str, Any]) -> Dict[str, Any]:
  """Config fields that are tuples come back from JSON as lists."""
  return {k: tuple(v) if isinstance(v, list) else v
          for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """A run as an actor needs it (JSON fields of the same names, plus
  "format").

  Attributes:
    run_id: new at every start of a learner, so that an actor tells a
      restarted learner from a server that was only slow to answer.
    agent: `tf_metagrad.agents` name.
    env: `tf_metagrad.envs` name.
    env_kwargs: the run's environment options.
    config_overrides: the run's agent config overrides (`RunSpec`).
    derived_config: config values the trainer computed (`RunSpec`).
    seed: the run's seed, the base of an actor's default seed.
    unroll_length: T of the items (FRODO: M+1 times the learner's unroll).
    unroll_stride: steps between an actor's consecutive items (T: no
      overlap); the learner counts S new frames per item and copy.
    envs_per_actor: environment copies the trainer's own actors step.
    refresh_every: unrolls between the trainer's actors' weight refreshes.
    item_signature: column -> {"shape": [...], "dtype": name} of the queue's
      items (`items.item_spec`, recurrent core state included); an actor
      whose own items would differ refuses to start.
  """

  run_id: str
  agent: str
  env: str
  env_kwargs: Dict[str, Any]
  config_overrides: Dict[str, Any]
  derived_config: Dict[str, Any]
  seed: int
  unroll_length: int
  unroll_stride: int
  envs_per_actor: int
  refresh_every: int
  item_signature: Dict[str, Dict[str, Any]]

  def to_json(self) -> str:
    return json.dumps(dict(dataclasses.asdict(self), format=FORMAT),
                      sort_keys=True)

  @classmethod
  def from_json(cls, text: str, source: str = "run info") -> "RunInfo":
    """Parses `to_json`'s text.

    Raises:
      RunInfoError: naming `source`, if the text is not a JSON object, has
        another format, lacks or adds fields or has one of another type.
    """
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise RunInfoError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
      raise RunInfoError(f"{source} is not a JSON object")
    if data.get("format") != FORMAT:
      raise RunInfoError(
          f"{source} has format {data.get('format')!r}, expected {FORMAT} "
          f"(do the learner and the actor run the same tf_metagrad "
          f"version?)")
    fields = {f.name for f in dataclasses.fields(cls)}
    given = set(data) - {"format"}
    if given != fields:
      raise RunInfoError(
          f"{source} lacks fields {sorted(fields - given)} or has unknown "
          f"fields {sorted(given - fields)}")
    del data["format"]
    mistyped = [f.name for f in dataclasses.fields(cls) if not isinstance(
        data[f.name], typing.get_origin(f.type) or f.type)]
    if mistyped:
      raise RunInfoError(f"{source} has fields of the wrong type: "
                         f"{mistyped}")
    return cls(**dict(
        data, config_overrides=_untuple(data["config_overrides"]),
        derived_config=_untuple(data["derived_config"])))

  def run_spec(self) -> runs.RunSpec:
    """The run's spec, as far as it decides the environment and network."""
    return runs.RunSpec(agent=self.agent, env=self.env,
                        config_overrides=dict(self.config_overrides),
                        env_kwargs=dict(self.env_kwargs), seed=self.seed,
                        derived_config=dict(self.derived_config))

  def differences(self, other: "RunInfo") -> List[str]:
    """"field: this -> other" for each field an actor is built from that
    differs in `other` (empty: an actor of this run can feed `other`)."""
    out = []
    for name in _ACTOR_BUILT_FROM:
      old, new = getattr(self, name), getattr(other, name)
      if old == new:
        continue
      if name == "item_signature":
        out.append(f"item_signature: columns "
                   f"{differing_columns(old, new)} differ")
      else:
        out.append(f"{name}: {old!r} -> {new!r}")
    return out

  def conflicts(self, agent: Optional[str] = None,
                env: Optional[str] = None,
                config: Optional[Dict[str, Any]] = None,
                env_kwargs: Optional[Dict[str, Any]] = None,
                unroll_length: Optional[int] = None,
                unroll_stride: Optional[int] = None
                ) -> List[Tuple[str, str, str]]:
    """Settings an actor was given that differ from this run's.

    Args:
      agent: None: not given; likewise the others.
      env: the environment name.
      config: parsed agent config overrides, compared with the run's
        resolved config (a value equal to the default is no conflict).
      env_kwargs: parsed environment options.
      unroll_length: T of the items.
      unroll_stride: steps between consecutive items.

    Returns:
      (setting, given, the run's) texts, e.g. ("config",
      "gamma=0.9", "gamma=0.99"); empty when everything given agrees.
    """
    out = []
    if agent is not None and agent != self.agent:
      out.append(("agent", agent, self.agent))
    if env is not None and env != self.env:
      out.append(("env", env, self.env))
    # Another agent has other config fields; its conflict comes first.
    if config and agent in (None, self.agent):
      resolved = runs.agent_config(self.run_spec())
      for name, value in config.items():
        if value != getattr(resolved, name):
          out.append(("config", f"{name}={value}",
                      f"{name}={getattr(resolved, name)}"))
    for name, value in (env_kwargs or {}).items():
      if name not in self.env_kwargs:
        out.append(("env_kwargs", f"{name}={value!r}", f"{name} (unset)"))
      elif _published(value) != self.env_kwargs[name]:
        out.append(("env_kwargs", f"{name}={value!r}",
                    f"{name}={self.env_kwargs[name]!r}"))
    if unroll_length is not None and unroll_length != self.unroll_length:
      out.append(("unroll_length", str(unroll_length),
                  str(self.unroll_length)))
    if unroll_stride is not None and unroll_stride != self.unroll_stride:
      out.append(("unroll_stride", str(unroll_stride),
                  str(self.unroll_stride)))
    return out


def differing_columns(signature: Dict[str, Dict[str, Any]],
                      other: Dict[str, Dict[str, Any]]) -> List[str]:
  """Columns whose spec differs between two `RunInfo.item_signature`s, or
  that only one of them has."""
  return sorted(c for c in set(signature) | set(other)
                if signature.get(c) != other.get(c))


def signature_json(item_spec: Dict[str, tf.TensorSpec]
                   ) -> Dict[str, Dict[str, Any]]:
  """`RunInfo.item_signature` of an item spec (`items.item_spec`)."""
  return {name: {"shape": spec.shape.as_list(), "dtype": spec.dtype.name}
          for name, spec in sorted(item_spec.items())}


def describe(spec: runs.RunSpec, unroll_length: int,
             item_spec: Dict[str, tf.TensorSpec], envs_per_actor: int,
             refresh_every: int = 1,
             unroll_stride: Optional[int] = None) -> RunInfo:
  """The run info of a learner starting now (a new `run_id`).

  Args:
    spec: the run.
    unroll_length: T of the items (`runs.item_unroll_length`).
    item_spec: the queue's signature (`items.item_spec`).
    envs_per_actor: copies per actor of the trainer's own actors.
    refresh_every: unrolls between their weight refreshes.
    unroll_stride: steps between an actor's consecutive items, in [1,
      unroll_length]; None: unroll_length (no overlap).

  Returns:
    The info in the form `read` gives it back, so the two compare equal.

  Raises:
    ValueError: if a count is < 1 or the stride is outside [1, unroll].
  """
  for name, value in (("unroll_length", unroll_length),
                      ("envs_per_actor", envs_per_actor),
                      ("refresh_every", refresh_every)):
    if value < 1:
      raise ValueError(f"{name} must be >= 1, got {value}.")
  stride = items.resolve_stride(unroll_stride, unroll_length)
  info = RunInfo(
      run_id=uuid.uuid4().hex, agent=spec.agent, env=spec.env,
      env_kwargs=_published(spec.env_kwargs),
      config_overrides=dict(spec.config_overrides),
      derived_config=dict(spec.derived_config), seed=spec.seed,
      unroll_length=unroll_length, unroll_stride=stride,
      envs_per_actor=envs_per_actor,
      refresh_every=refresh_every, item_signature=signature_json(item_spec))
  return RunInfo.from_json(info.to_json())


def publish(client: reverb.Client, info: RunInfo,
            timeout_s: float = 30.0) -> None:
  """Replaces the server's run-info item by `info`.

  Raises:
    weights.ServerUnavailableError: if the insert took over `timeout_s`.
  """
  weights_lib.insert(client, server_lib.RUN_INFO_TABLE,
                     np.array(info.to_json().encode("utf-8"), dtype=object),
                     timeout_s, "publishing the run info")


class Backoff:
  """Delays between retries: `first_s`, doubled after each, at most `max_s`.

  A learner restart (start-up, restoring, compiling) can take minutes: a
  short fixed period would have every waiting actor ping it hundreds of
  times, a long one would leave a learner that was gone only briefly
  without data for that long.
  """

  def __init__(self, first_s: float = 1.0, max_s: float = 30.0) -> None:
    if not 0 < first_s <= max_s:
      raise ValueError(f"Backoff needs 0 < first_s <= max_s, got first_s="
                       f"{first_s}, max_s={max_s}.")
    self._delay = first_s
    self._max_s = max_s

  def next(self) -> float:
    delay = self._delay
    self._delay = min(2 * delay, self._max_s)
    return delay


def _read_once(client: reverb.Client,
               should_stop: Callable[[], bool]) -> Optional[RunInfo]:
  """The run info, or None if none is published yet (or stopping)."""
  tables = client.server_info(timeout=1)
  if server_lib.RUN_INFO_TABLE not in tables:
    raise RunInfoError(
        f"the Reverb server at {client.server_address} has no "
        f"{server_lib.RUN_INFO_TABLE!r} table (tables: {sorted(tables)}): "
        f"not a tf_metagrad trainer, or one of another version")
  if tables[server_lib.RUN_INFO_TABLE].current_size == 0:
    return None
  done, sample = weights_lib.call_with_deadline(
      lambda: next(client.sample(server_lib.RUN_INFO_TABLE, num_samples=1,
                                 emit_timesteps=False,
                                 unpack_as_table_signature=True)),
      time.monotonic() + _SAMPLE_TIMEOUT_S, should_stop,
      what="run info sample")
  if not done:
    return None
  source = f"the run info at {client.server_address}"
  try:
    text = np.asarray(sample.data).item().decode("utf-8")
  except UnicodeDecodeError as e:
    raise RunInfoError(f"{source} is not UTF-8 text: {e}") from None
  return RunInfo.from_json(text, source=source)


def read(client: reverb.Client, deadline: float,
         should_stop: Callable[[], bool] = lambda: False,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Optional[RunInfo]:
  """The run info of the server's learner, waiting until there is one.

  Tries at once, then after each `Backoff` delay (1 s doubling to 30 s),
  the last try at `deadline`: the server may not be up yet, or be a learner
  that restarts, or one that has not published yet.

  Args:
    client: a client of the server.
    deadline: `clock()` value after which no try starts.
    should_stop: polled while waiting (every 0.1 s at most).
    clock: the time (replaced in tests).
    sleep: sleeps (replaced in tests).

  Returns:
    The run info, or None once `should_stop()`.

  Raises:
    weights.ServerUnavailableError: past `deadline`, saying whether the
      server did not answer (with the last error) or answered without a
      run info.
    RunInfoError: at once, if the server has no run-info table or an
      unreadable item (waiting would not change that).
  """
  backoff = Backoff()
  while not should_stop():
    try:
      found = _read_once(client, should_stop)
      if found is not None:
        return found
      problem = "it answers, but no learner has published the run info"
    except (reverb.errors.ReverbError, RuntimeError) as e:
      # Refused, timed out or reset: the server is down or restarting.
      first = str(e).splitlines()[0] if str(e) else ""
      problem = f"last error: {type(e).__name__}: {first}"
    remaining = deadline - clock()
    if remaining <= 0:
      raise weights_lib.ServerUnavailableError(problem)
    end = clock() + min(backoff.next(), remaining)
    while clock() < end and not should_stop():
      sleep(min(0.1, end - clock()))
  return None
