r"""A stand-alone actor feeding a trainer's Reverb server (local or remote).

  python -m trainers.actor --reverb_address=HOST:PORT --agent=stac --env=catch

--agent, --env, --config and --env_kwargs must match the trainer's (they
define the network whose weights the actor receives and the item signature).

Exits 0 after SIGTERM/SIGINT or --max_unrolls, and 1 with a one-line
message once the server has not answered for --server_timeout_secs (the
trainer finished, crashed or is unreachable).
"""

import os
import signal
import sys
import threading
import time

from absl import app
from absl import flags

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


class _Watchdog(threading.Thread):
  """Pings the server (bounded calls) and stops the actor once it has not
  answered for `timeout_s`: the actor's own Reverb calls only time out and
  retry, so without this a vanished learner leaves the actor running."""

  def __init__(self, client, stop: threading.Event, timeout_s: float):
    super().__init__(name="server-watchdog", daemon=True)
    self._client = client
    self._stop = stop
    self._timeout_s = timeout_s
    self.reason = None

  def run(self):
    last_answer = time.monotonic()
    while not self._stop.is_set():
      try:
        self._client.server_info(timeout=1)
        last_answer = time.monotonic()
      except Exception as e:  # pylint: disable=broad-except
        silent = time.monotonic() - last_answer
        if silent > self._timeout_s:
          self.reason = (f"the Reverb server at {FLAGS.reverb_address} has "
                         f"not answered for {silent:.0f}s (trainer finished "
                         f"or gone; last error {type(e).__name__})")
          self._stop.set()
          return
      self._stop.wait(1.0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.reverb_address or ":" not in FLAGS.reverb_address:
    raise app.UsageError("--reverb_address=HOST:PORT is required.")
  # pylint: disable=g-import-not-at-top
  import reverb
  from tf_metagrad import agents
  from tf_metagrad import envs
  from tf_metagrad.agents import networks
  from tf_metagrad.system import actor as actor_lib
  from tf_metagrad.system import weights as weights_lib
  from trainers import overrides
  # pylint: enable=g-import-not-at-top
  try:
    config_overrides = overrides.parse_config(FLAGS.agent, FLAGS.config)
    env_kwargs = overrides.parse_env_kwargs(FLAGS.env_kwargs)
    config = agents.make_config(FLAGS.agent, **config_overrides)
    env = envs.make(FLAGS.env, seed=FLAGS.seed, **env_kwargs)
  except (ValueError, TypeError) as e:
    raise app.UsageError(str(e)) from None
  network = networks.make_network(config, env.observation_spec,
                                  env.action_space)
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
    actor.run(should_stop=stop.is_set, max_unrolls=FLAGS.max_unrolls)
  except (weights_lib.ServerUnavailableError, reverb.errors.ReverbError,
          RuntimeError) as e:
    error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
  finally:
    stop.set()
    actor.close()
  print(f"actor done: unrolls={actor.stats.unrolls} "
        f"env_steps={actor.stats.env_steps}", flush=True)
  reason = watchdog.reason or error
  if reason:
    print(f"actor error: {reason}", file=sys.stderr, flush=True)
    return 1
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(app.run(main))
