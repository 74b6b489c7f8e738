r"""A stand-alone actor feeding a trainer's Reverb server (local or remote).

  python -m trainers.actor --reverb_address=HOST:PORT

The learner publishes its run on its server (`tf_metagrad.system.run_info`:
agent, environment and its options, config, item unroll length, copies per
actor, seed, the items' signature), so the address is all an actor needs.
--num_envs, --seed and --refresh_every may differ from what the trainer's
own actors use. --agent, --env, --config, --env_kwargs, --unroll_length and
--unroll_stride are only checked against the learner's: neither the weights
nor the items of an actor that differs would fit (nor, for the stride, the
learner's env-step count), so it refuses to start (--config is read only
next to --agent, --env_kwargs only next to --env).

Whoever reaches the server's port can publish a run info, and an
environment name such as `dm_env:<module>:<callable>` or
`gym:<module>:<id>` imports a module (running its code, e.g.
`dm_env:subprocess:check_call` runs the env_kwargs as a command). So the
actor builds such an environment only when its own --env names it, and
otherwise exits with one line before importing anything the name picks
(`envs.registry.imports_user_code` says which names do).

The actor outlives a learner restart: once the server stops answering, it
retries with exponential backoff (1 s doubling to 30 s) until the server
has been silent for --server_timeout_secs (default 600 s, room for a TPU
learner to start again and compile), then re-reads the run info and the
weights and carries on. A restarted learner whose run differs in what the
actor was built from ends the actor.

--nice=N lowers the actor's CPU priority (all its threads) when it shares
a host with the learner; `trainers.train --actor_nice=N` passes it to the
actor processes the trainer starts.

Exits 0 after SIGTERM/SIGINT or --max_unrolls, and 1 with a one-line
message once the server has not answered for --server_timeout_secs (the
trainer finished, crashed or is unreachable), or for a bad flag or one
that contradicts the learner.
"""

import os
import secrets
import shlex
import signal
import sys
import threading
import time
from typing import NoReturn, Sequence

from absl import app
from absl import flags

from tf_metagrad.programs import cli
from tf_metagrad.programs import flags_check

FLAGS = flags.FLAGS

flags.DEFINE_string("reverb_address", None, "HOST:PORT of the trainer's "
                    "Reverb server.")
flags.DEFINE_string("agent", None, "Must be the learner's agent (default: "
                    "the learner's).")
flags.DEFINE_string("env", None, "Must be the learner's environment "
                    "(default: the learner's). Needed to build one whose "
                    "name imports a module (gym:<module>:<id>, "
                    "dm_env:<module>:<callable>): the actor does not run "
                    "code named by the server alone.")
flags.DEFINE_multi_string("config", [], "Agent config name=value, must be "
                          "the learner's value (needs --agent).")
flags.DEFINE_multi_string("env_kwargs", [], "Environment kwarg name=value, "
                          "must be the learner's (needs --env).")
flags.DEFINE_integer("num_envs", None, "Environments stepped together "
                     "(default: the learner's --envs_per_actor).")
flags.DEFINE_integer("unroll_length", None, "Must be the learner's item "
                     "unroll length (FRODO: (M+1) x its --unroll_length; "
                     "default: the learner's).")
flags.DEFINE_integer("unroll_stride", None, "Must be the learner's steps "
                     "between consecutive items (it counts that many new "
                     "frames per item; default: the learner's).")
flags.DEFINE_integer("seed", None, "Seed of this actor (default: drawn at "
                     "random above the run's seed, and printed).")
flags.DEFINE_integer("refresh_every", None, "Unrolls between weight "
                     "refreshes (default: the learner's "
                     "--actor_refresh_every).")
flags.DEFINE_integer("max_unrolls", None, "Stop after this many unrolls.")
flags.DEFINE_integer("nice", 0, "Lower this process's CPU priority by this "
                     "much (nice(1)'s scale, 0-19) before it starts any "
                     "thread, so that a learner on the same host gets the "
                     "cores first when both want them.", lower_bound=0,
                     upper_bound=19)
flags.DEFINE_float("server_timeout_secs", 600.0, "Exit when the Reverb "
                   "server has not answered for this long (retrying with "
                   "backoff meanwhile, so a learner restart that fits in it "
                   "is survived).")

# A server silent for this long is taken as gone (about two failed pings):
# the actor's own calls cannot tell, since a queue that is full because the
# learner is busy times them out just like a server that is gone.
_LOST_AFTER_S = 3.0


def _is_address(value) -> bool:
  host, colon, port = (value or "").rpartition(":")
  return bool(host and colon and port.isdigit() and 1 <= int(port) <= 65535)


cli.register({
    "reverb_address": (_is_address, "expected HOST:PORT of the trainer's "
                       "Reverb server, PORT in [1, 65535]"),
    "num_envs": cli.integer(1, unset="the learner's"),
    "unroll_length": cli.integer(1, unset="the learner's"),
    "unroll_stride": cli.integer(1, unset="the learner's"),
    "seed": cli.integer(0, cli.SEED_MAX, unset="a random one"),
    "refresh_every": cli.integer(1, unset="the learner's"),
    "max_unrolls": cli.integer(1, unset="no limit"),
    "server_timeout_secs": cli.number(0, inclusive=False),
})


class _Fatal(Exception):
  """Ends the actor; the message is its one error line."""


class _Monitor(threading.Thread):
  """Pings the server (bounded calls) while the actor acts, and sets `lost`
  once it has not answered for `lost_after_s`: the actor's own calls only
  time out and retry, so without this a vanished learner would leave the
  actor waiting on its queue forever."""

  def __init__(self, client, lost_after_s: float) -> None:
    super().__init__(name="server-monitor", daemon=True)
    self._client = client
    self._lost_after_s = lost_after_s
    self._closed = threading.Event()
    self.lost = threading.Event()
    self.last_answer = time.monotonic()
    self.error = None

  def run(self) -> None:
    while not self._closed.is_set():
      if not self.lost.is_set():
        try:
          self._client.server_info(timeout=1)
          self.last_answer = time.monotonic()
        except Exception as e:  # pylint: disable=broad-except
          if time.monotonic() - self.last_answer > self._lost_after_s:
            self.error = e
            self.lost.set()
      self._closed.wait(1.0)

  def resume(self) -> None:
    """The server answered again (after `lost`)."""
    self.last_answer = time.monotonic()
    self.lost.clear()

  def close(self) -> None:
    self._closed.set()
    # Its ping (1 s at most) must not be in flight at exit, see `_exit`.
    self.join(5.0)


def _checked_flags():
  """(--config overrides, --env_kwargs), parsed, with what can be checked
  before the learner's run info is read (ranges are checked while flags
  are parsed); the comparison with the learner's comes after."""
  for flag, needed in (("config", "agent"), ("env_kwargs", "env")):
    if FLAGS[flag].value and FLAGS[needed].value is None:
      shown = " ".join(f"--{flag}={item}" for item in FLAGS[flag].value)
      raise cli.FlagError(
          f"{shown}: expected only with --{needed} (the run's values are the "
          f"learner's; these only check them)")
  config_overrides = {}
  if FLAGS.agent is not None:
    # Parsed, not validated alone: the learner's config may hold values
    # that are valid only together with these (a preset's decay).
    config_overrides = flags_check.config_overrides(FLAGS.agent, FLAGS.config)
  env_kwargs = {}
  if FLAGS.env is not None:
    env_kwargs = flags_check.environment(FLAGS.env, FLAGS.env_kwargs,
                                         FLAGS.seed or 0)
  return config_overrides, env_kwargs


def _first_line(error: BaseException) -> str:
  text = str(error).splitlines()[0] if str(error) else ""
  return f"{type(error).__name__}: {text}"


def _exit(code: int):
  """Ends the process without finalizing the interpreter.

  A Reverb call still running in a daemon thread when the interpreter
  finalizes aborts the process ("terminate called without an active
  exception", exit 134). `weights.call_with_deadline` abandons such calls
  by design (a weights sample that outlived its deadline), so joining our
  own threads is not enough.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def _read_run_info(client, since: float, stop: threading.Event):
  """The learner's run info, retrying with backoff until the server has
  been silent for --server_timeout_secs since `since`; None if stopped."""
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.system import run_info
  from tf_metagrad.system import weights as weights_lib
  # pylint: enable=g-import-not-at-top
  try:
    return run_info.read(client, since + FLAGS.server_timeout_secs,
                         stop.is_set)
  except weights_lib.ServerUnavailableError as e:
    raise _Fatal(
        f"the Reverb server at {FLAGS.reverb_address} has not answered for "
        f"{time.monotonic() - since:.0f}s with a run to feed ({e}); the "
        f"trainer finished or is gone (--server_timeout_secs="
        f"{FLAGS.server_timeout_secs:g})") from None


def _refuse_code_not_named_here(info) -> None:
  """Raises `_Fatal` if building `info.env` would import a module that the
  actor's own --env does not name: the run info comes from anyone who can
  reach the port, the command line from whoever runs this actor."""
  # pylint: disable-next=g-import-not-at-top
  from tf_metagrad.envs import registry
  if FLAGS.env == info.env or not registry.imports_user_code(info.env):
    return
  given = f" (this actor has --env={FLAGS.env})" if FLAGS.env else ""
  raise _Fatal(
      f"refusing env {info.env!r} of the run at {FLAGS.reverb_address}: "
      f"building it imports a module its name picks, which an actor does "
      f"only when its own command line names that env{given}; to allow "
      f"it, pass {shlex.quote('--env=' + info.env)}")


def _build_actor(client, info, given):
  """The actor of the learner's run `info`, after checking the flags that
  were `given` (parsed --config, --env_kwargs) against it."""
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.system import reverb_actor as actor_lib
  from tf_metagrad.system import run_info
  # pylint: enable=g-import-not-at-top
  _refuse_code_not_named_here(info)
  config_overrides, env_kwargs = given
  conflicts = info.conflicts(
      agent=FLAGS.agent, env=FLAGS.env, config=config_overrides,
      env_kwargs=env_kwargs, unroll_length=FLAGS.unroll_length,
      unroll_stride=FLAGS.unroll_stride)
  if conflicts:
    setting, mine, learners = conflicts[0]
    raise cli.FlagError(
        f"--{setting}={mine}: differs from the learner's {learners} (at "
        f"{FLAGS.reverb_address}); leave --{setting} out to use the "
        f"learner's")
  # Remote actors started alike must not act alike: a random draw, printed
  # so that --seed can repeat it, above the run's seed (at most 2**32 - 1,
  # so the sum stays below 2**63).
  seed = (info.seed * 2**31 + secrets.randbits(31) if FLAGS.seed is None
          else FLAGS.seed)
  num_envs = info.envs_per_actor if FLAGS.num_envs is None else FLAGS.num_envs
  refresh_every = (info.refresh_every if FLAGS.refresh_every is None
                   else FLAGS.refresh_every)
  actor = actor_lib.make_actor(
      client, info.run_spec(), num_envs=num_envs,
      unroll_length=info.unroll_length, seed=seed,
      refresh_every=refresh_every, unroll_stride=info.unroll_stride)
  differing = run_info.differing_columns(
      run_info.signature_json(actor.item_spec()), info.item_signature)
  if differing:
    actor.close()
    raise _Fatal(
        f"this actor's items would not fit the queue of the learner at "
        f"{FLAGS.reverb_address} (columns {differing} differ): do both "
        f"machines run the same tf_metagrad version?")
  print(f"actor: feeding run {info.run_id} at {FLAGS.reverb_address}: "
        f"agent={info.agent} env={info.env} "
        f"unroll_length={info.unroll_length} "
        f"unroll_stride={info.unroll_stride} num_envs={num_envs} "
        f"seed={seed} refresh_every={refresh_every}", flush=True)
  return actor


def _act(actor, client, info, stop: threading.Event) -> None:
  """Runs `actor` until a signal or --max_unrolls, through server losses."""
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.system import weights as weights_lib
  # pylint: enable=g-import-not-at-top
  monitor = _Monitor(client, min(_LOST_AFTER_S, FLAGS.server_timeout_secs))
  monitor.start()
  try:
    while True:
      try:
        actor.run(should_stop=lambda: stop.is_set() or monitor.lost.is_set(),
                  max_unrolls=FLAGS.max_unrolls)
      except weights_lib.ServerUnavailableError as e:
        monitor.error = e
        monitor.lost.set()
      if stop.is_set() or not monitor.lost.is_set():
        return
      print(f"actor: the Reverb server at {FLAGS.reverb_address} stopped "
            f"answering ({_first_line(monitor.error)}); retrying with "
            f"backoff until it has been silent for --server_timeout_secs="
            f"{FLAGS.server_timeout_secs:g}", flush=True)
      latest = _read_run_info(client, monitor.last_answer, stop)
      if latest is None:
        return
      changed = info.differences(latest)
      if changed:
        raise _Fatal(
            f"the learner at {FLAGS.reverb_address} came back with another "
            f"run ({'; '.join(changed)}); this actor cannot feed it, start "
            f"a new one")
      silent = time.monotonic() - monitor.last_answer
      learner = ("a restarted learner" if latest.run_id != info.run_id
                 else "the same learner")
      print(f"actor: reconnected after {silent:.0f}s to {learner} (run "
            f"{latest.run_id}); fetching its weights", flush=True)
      info = latest
      monitor.resume()
  finally:
    monitor.close()


def main(argv: Sequence[str]) -> NoReturn:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.nice:
    # Before anything imports TensorFlow or Reverb and starts their threads:
    # on Linux a thread inherits the priority of the thread that starts it.
    os.nice(FLAGS.nice)
  given = _checked_flags()
  # An actor's policy calls are small and run on the CPU (reverb_actor);
  # a TensorFlow that saw the host's GPUs would still reserve memory on
  # each. Before TensorFlow initialises its devices; a value the user set
  # (e.g. to give actors a GPU after all) stands.
  os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
  # pylint: disable=g-import-not-at-top
  import reverb
  from tf_metagrad.system import reverb_actor as actor_lib
  from tf_metagrad.system import run_info
  # pylint: enable=g-import-not-at-top
  stop = threading.Event()

  def on_signal(signum, frame):
    del frame
    if stop.is_set():  # A second signal: do not wait for a clean stop.
      os._exit(128 + signum)  # pylint: disable=protected-access
    stop.set()

  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, on_signal)
  client = reverb.Client(FLAGS.reverb_address)
  print(f"actor: reading the run at {FLAGS.reverb_address} (waiting for "
        f"its learner up to --server_timeout_secs="
        f"{FLAGS.server_timeout_secs:g}"
        f"{f'; nice {FLAGS.nice}' if FLAGS.nice else ''})", flush=True)
  actor = None
  reason = None
  try:
    info = _read_run_info(client, time.monotonic(), stop)
    if info is not None:
      actor = _build_actor(client, info, given)
      _act(actor, client, info, stop)
  except (_Fatal, cli.FlagError, run_info.RunInfoError) as e:
    reason = cli.one_line(e)
  except (reverb.errors.ReverbError, RuntimeError, ValueError) as e:
    # ValueError: weights that do not fit this network.
    reason = _first_line(e)
  finally:
    if actor is not None:
      actor.close()
  stats = actor.stats if actor is not None else actor_lib.ActorStats()
  print(f"actor done: unrolls={stats.unrolls} env_steps={stats.env_steps} "
        f"weights_version={stats.weights_version}", flush=True)
  if reason:
    print(f"error: {reason}", file=sys.stderr, flush=True)
  _exit(1 if reason else 0)


def run() -> None:
  """Runs the program (entry points: `tf_metagrad.programs.scripts`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
