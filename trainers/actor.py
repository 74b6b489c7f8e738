r"""A stand-alone actor feeding a trainer's Reverb server (local or remote).

  python -m trainers.actor --reverb_address=HOST:PORT --agent=stac --env=catch

--agent, --env, --config and --env_kwargs must match the trainer's (they
define the network whose weights the actor receives and the item signature).
"""

import os
import signal
import sys
import threading

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
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stop.set())
  actor = actor_lib.Actor(
      reverb.Client(FLAGS.reverb_address), FLAGS.env, network,
      num_envs=FLAGS.num_envs, unroll_length=FLAGS.unroll_length,
      seed=FLAGS.seed, env_kwargs=env_kwargs,
      refresh_every=FLAGS.refresh_every)
  try:
    actor.run(should_stop=stop.is_set, max_unrolls=FLAGS.max_unrolls)
  finally:
    actor.close()
  print(f"actor done: unrolls={actor.stats.unrolls} "
        f"env_steps={actor.stats.env_steps}", flush=True)
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(app.run(main))
