r"""A stand-alone actor feeding a trainer's Reverb server (local or remote).

  python -m trainers.actor --reverb_address=HOST:PORT --agent=stac --env=catch

--agent, --env, --config and --env_kwargs must match the trainer's (they
define the network whose weights the actor receives and the item signature).

Exits 0 after SIGTERM/SIGINT or --max_unrolls, and 1 with a one-line
message once the server has not answered for --server_timeout_secs (the
trainer finished, crashed or is unreachable) or for a bad flag.
"""

import os
import signal
import sys
import threading
import time

from absl import app
from absl import flags

from export import cli
from trainers import flags_check

FLAGS = flags.FLAGS

flags.DEFINE_string("reverb_address", None, "HOST:PORT of the trainer's "
                    "Reverb server.")
flags.DEFINE_string("agent", "stac", "Agent of the trainer.")
flags.DEFINE_string("env", "catch", "Environment name.")
flags.DEFINE_multi_string("config", [], "Agent config overrides name=value "
                          "(as given to the trainer).")
flags.DEFINE_multi_string("env_kwargs", [], "Environment kwargs name=value.")
flags.DEFINE_integer("num_envs", 32, "Environments stepped together.")
flags.DEFINE_integer("unroll_length", 20, "Unroll length of the items (the "
                     "trainer prints it; FRODO: (M+1) x its --unroll_length).")
flags.DEFINE_integer("seed", 0, "Seed of this actor.")
flags.DEFINE_integer("refresh_every", 1, "Unrolls between weight refreshes.")
flags.DEFINE_integer("max_unrolls", None, "Stop after this many unrolls.")
flags.DEFINE_float("server_timeout_secs", 30.0, "Exit when the Reverb server "
                   "has not answered for this long.")


def _is_address(value) -> bool:
  host, colon, port = (value or "").rpartition(":")
  return bool(host and colon and port.isdigit() and 1 <= int(port) <= 65535)


cli.register({
    "reverb_address": (_is_address, "expected HOST:PORT of the trainer's "
                       "Reverb server, PORT in [1, 65535]"),
    "num_envs": cli.integer(1),
    "unroll_length": cli.integer(1),
    "seed": cli.integer(0, cli.SEED_MAX),
    "refresh_every": cli.integer(1),
    "max_unrolls": cli.integer(1, unset="no limit"),
    "server_timeout_secs": cli.number(0, inclusive=False),
})


class _Watchdog(threading.Thread):
  """Pings the server (bounded calls) and stops the actor once it has not
  answered for `timeout_s`: the actor's own Reverb calls only time out and
  retry, so without this a vanished learner leaves the actor running."""

  def __init__(self, client, stop: threading.Event, timeout_s: float):
    super().__init__(name="server-watchdog", daemon=True)
    self._client = client
    # Not `self._stop`: threading.Thread has a method of that name, which
    # `join` calls.
    self._stop_event = stop
    self._timeout_s = timeout_s
    self.reason = None

  def run(self):
    last_answer = time.monotonic()
    while not self._stop_event.is_set():
      try:
        self._client.server_info(timeout=1)
        last_answer = time.monotonic()
      except Exception as e:  # pylint: disable=broad-except
        silent = time.monotonic() - last_answer
        if silent > self._timeout_s:
          self.reason = (f"the Reverb server at {FLAGS.reverb_address} has "
                         f"not answered for {silent:.0f}s (trainer finished "
                         f"or gone; last error {type(e).__name__})")
          self._stop_event.set()
          return
      self._stop_event.wait(1.0)


def _checked_flags():
  """(config overrides, env kwargs): --agent, --config, --env and
  --env_kwargs checked (ranges are checked while flags are parsed)."""
  config_overrides = flags_check.agent_config(FLAGS.agent, FLAGS.config)
  env_kwargs = flags_check.environment(FLAGS.env, FLAGS.env_kwargs,
                                       FLAGS.seed)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config_overrides, env_kwargs = _checked_flags()
  # pylint: disable=g-import-not-at-top
  import reverb
  from tf_metagrad import agents
  from tf_metagrad import envs
  from tf_metagrad.agents import networks
  from tf_metagrad.system import actor as actor_lib
  from tf_metagrad.system import weights as weights_lib
  # pylint: enable=g-import-not-at-top
  config = agents.make_config(FLAGS.agent, **config_overrides)
  env = envs.make(FLAGS.env, seed=FLAGS.seed, **env_kwargs)
  try:
    network = networks.make_network(config, env.observation_spec,
                                    env.action_space)
  finally:
    env.close()
  stop = threading.Event()

  def on_signal(signum, frame):
    del frame
    if stop.is_set():  # A second signal: do not wait for a clean stop.
      os._exit(128 + signum)  # pylint: disable=protected-access
    stop.set()

  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, on_signal)
  watchdog = _Watchdog(reverb.Client(FLAGS.reverb_address), stop,
                       FLAGS.server_timeout_secs)
  watchdog.start()
  actor = actor_lib.Actor(
      reverb.Client(FLAGS.reverb_address), FLAGS.env, network,
      num_envs=FLAGS.num_envs, unroll_length=FLAGS.unroll_length,
      seed=FLAGS.seed, env_kwargs=env_kwargs,
      refresh_every=FLAGS.refresh_every)
  error = None
  try:
    while True:
      try:
        actor.run(should_stop=stop.is_set, max_unrolls=FLAGS.max_unrolls)
        break
      except weights_lib.ServerUnavailableError as e:
        # The weights fetch gives up after its own fixed 30 s; only the
        # watchdog decides that the server is gone, so that
        # --server_timeout_secs means the same whichever notices first.
        if stop.is_set():
          break
        print(f"actor: {_first_line(e)}; retrying until the server has "
              f"not answered for --server_timeout_secs="
              f"{FLAGS.server_timeout_secs:g}", flush=True)
  except (reverb.errors.ReverbError, RuntimeError, ValueError) as e:
    # ValueError: weights that do not fit this network (flags that differ
    # from the trainer's).
    error = _first_line(e)
  finally:
    stop.set()
    # Its ping (1 s at most) must not be in flight at exit, see `_exit`.
    watchdog.join(5.0)
    actor.close()
  print(f"actor done: unrolls={actor.stats.unrolls} "
        f"env_steps={actor.stats.env_steps}", flush=True)
  reason = watchdog.reason or error
  if reason:
    print(f"actor error: {reason}", file=sys.stderr, flush=True)
  _exit(1 if reason else 0)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  cli.run(main, prefix="actor error: ")
