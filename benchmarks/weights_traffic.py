r"""Weight bytes sent to an actor per 1000 env steps, fetching on every
refresh ("before") and only when the version changed ("after").

  python -m benchmarks.weights_traffic

Builds the atari preset's network of --agent for --env (the ResNet torso,
heads of 256), starts a localhost Reverb server with the run's tables (the
trajectory queue replaced by a FIFO table that drops its oldest item, so
that the actor never waits on a learner that does not read), and simulates
the learner's side of the weights: a thread takes a "step" every
--learner_step_ms and offers the weights to a real `weights.Publisher`
after every --weights_every steps, which sends at most one snapshot per
--weights_min_interval_secs (as trainers.train does). One `system.Actor`
with the preset's copies and unroll length writes --unrolls unrolls,
refreshing every --refresh_every.

Both behaviours run in the same actor, against the same learner, in
alternating blocks of --block refreshes (--mode=both), so that drift of
the machine affects them alike: in "before" blocks each refresh is a full
fetch, as it was before the version table (the version read answers one
that is never held); in "after" blocks the actor runs as it is. The bytes
are counted where they arrive, at `weights.fetch` (the version and the
arrays of each full fetch) and, for "after", 8 bytes per version read.
The first unroll (tracing) and the forced fetch that starts a run are in
neither. Frames are env steps of all copies.
--mode=before or after runs one behaviour throughout.
Last line (--mode=both):
  before_bytes_per_1000_env_steps=<float> after_bytes_per_1000_env_steps=<float> ratio=<float>
"""

import threading
import time

from absl import app
from absl import flags
import reverb

from benchmarks import common
from tf_metagrad import runs
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import reverb_actor as actor_lib
from tf_metagrad.system import items
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import presets

FLAGS = flags.FLAGS
flags.DEFINE_string("agent", "stac", "Agent whose network is published.")
flags.DEFINE_string("env", "atari:Pong", "Environment (an atari: game for "
                    "the preset's network).")
flags.DEFINE_integer("unrolls", 120, "Unrolls the actor writes after its "
                     "first.", lower_bound=2)
flags.DEFINE_integer("block", 5, "Refreshes per block of one behaviour "
                     "(--mode=both).", lower_bound=1)
flags.DEFINE_enum("mode", "both", ["both", "before", "after"],
                  "both: alternate the two behaviours; before: a full "
                  "fetch at every refresh (the old actor); after: the "
                  "actor as it is.")
flags.DEFINE_float("learner_step_ms", 50.0, "Simulated learner step time.",
                   lower_bound=0.1)
flags.DEFINE_integer("weights_every", options_lib.Options.weights_every,
                     "Learner steps between weight offers, as "
                     "trainers.train's --weights_every.", lower_bound=1)
flags.DEFINE_float("weights_min_interval_secs",
                   options_lib.Options.weights_min_interval_s,
                   "Least time between two published snapshots, as "
                   "trainers.train's.", lower_bound=0.0)
flags.DEFINE_integer("refresh_every",
                     options_lib.Options.actor_refresh_every,
                     "Unrolls between the actor's weight refreshes, as "
                     "trainers.train's --actor_refresh_every.",
                     lower_bound=1)
flags.DEFINE_integer("envs_per_actor", None, "Default: the preset's.",
                     lower_bound=1)
flags.DEFINE_integer("unroll_length", None, "Default: the preset's.",
                     lower_bound=1)
flags.DEFINE_bool("tiny", False, "A tiny ResNet (4 channels, heads of 8), "
                  "for smoke tests.")

# A version no learner publishes (they count steps from 0): a "before"
# refresh compares the one held with it, so it always fetches.
_NEVER = -2
_VERSION_BYTES = 8


class _Meter:
  """Replaces `weights.latest_version` and `weights.fetch` to pick each
  refresh's behaviour and count what it downloads."""

  def __init__(self, stats: actor_lib.ActorStats, num_envs: int,
               block: int, mode: str) -> None:
    self._stats, self._num_envs = stats, num_envs
    self._block, self._mode = block, mode
    self._latest, self._fetch = weights_lib.latest_version, weights_lib.fetch
    self.start()

  def start(self) -> None:
    """Counts from here; until the next refresh, fetches are the start's
    (forced) one and count in neither behaviour."""
    self._refreshes = 0
    self._env_steps = self._stats.env_steps
    self._phase = None
    self.bytes = {"before": 0, "after": 0}
    self.frames = {"before": 0, "after": 0}
    self.fetches = {"before": 0, "after": 0}
    self.reads = 0

  def latest_version(self, client, timeout_s=30.0, should_stop=lambda: False):
    if self._mode == "both":
      phase = ("before", "after")[self._refreshes // self._block % 2]
    else:
      phase = self._mode
    self._refreshes += 1
    # A refresh follows its unrolls: their frames go to its behaviour.
    self.frames[phase] += ((self._stats.env_steps - self._env_steps)
                           * self._num_envs)
    self._env_steps = self._stats.env_steps
    self._phase = phase
    if phase == "before":
      return _NEVER
    self.reads += 1
    self.bytes["after"] += _VERSION_BYTES
    return self._latest(client, timeout_s=timeout_s, should_stop=should_stop)

  def fetch(self, client, timeout_s=30.0, should_stop=lambda: False):
    fetched = self._fetch(client, timeout_s=timeout_s,
                          should_stop=should_stop)
    if fetched is not None and self._phase is not None:
      self.fetches[self._phase] += 1
      self.bytes[self._phase] += _VERSION_BYTES + sum(
          a.nbytes for a in fetched[1])
    return fetched


def _learner(publisher: weights_lib.Publisher, done: threading.Event,
             counts: dict) -> None:
  """Steps every --learner_step_ms and offers the weights as the trainer's
  step loop does.

  The values are not changed: what a fetch moves depends on the shapes
  only, and the actor tells weights apart by their version.
  """
  step = 0
  while not done.wait(FLAGS.learner_step_ms / 1e3):
    step += 1
    if step % FLAGS.weights_every == 0 and publisher.offer(step):
      counts["published"] += 1


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (FLAGS.mode == "both"
      and FLAGS.unrolls // FLAGS.refresh_every < 2 * FLAGS.block):
    raise app.UsageError(
        f"--unrolls={FLAGS.unrolls}: expected at least 2 x --block x "
        f"--refresh_every = {2 * FLAGS.block * FLAGS.refresh_every} with "
        f"--mode=both, for one block of each behaviour")
  preset = presets.PRESETS["atari"]
  config = dict(preset.config)
  if FLAGS.tiny:
    config.update(resnet_channels=(4,), head_hidden_sizes=(8,))
  # The preset decays its learning rate; any length validates the config.
  spec = runs.RunSpec(agent=FLAGS.agent, env=FLAGS.env,
                      config_overrides=config,
                      derived_config={"decay_steps": 1})
  unroll = runs.item_unroll_length(
      spec, FLAGS.unroll_length or preset.unroll_length)
  num_envs = FLAGS.envs_per_actor or preset.envs_per_actor
  obs_spec, action_space = runs.env_specs(spec)
  published = networks_lib.make_network(runs.agent_config(spec), obs_spec,
                                        action_space)
  weight_bytes = sum(v.dtype.size * v.shape.num_elements()
                     for v in published.variables)
  print(f"network: agent={FLAGS.agent} env={FLAGS.env} "
        f"torso={published.torso_kind} {len(published.variables)} "
        f"variables, {weight_bytes} bytes; actor: {num_envs} envs, unroll "
        f"{unroll}, refresh_every={FLAGS.refresh_every}; learner: a step "
        f"every {FLAGS.learner_step_ms:g} ms, weights_every="
        f"{FLAGS.weights_every}, weights_min_interval_secs="
        f"{FLAGS.weights_min_interval_secs:g}", flush=True)
  item_spec = items.item_spec(obs_spec, action_space, unroll,
                              core_state_spec=published.core_state_spec())
  tables = common.free_running_tables(item_spec, published.variables,
                                      max_size=4)
  server = server_lib.start_server(tables)
  address = server_lib.local_address(server.port)
  client = reverb.Client(address)
  weights_lib.publish(client, published.variables, 0)
  publisher = weights_lib.Publisher(
      client, published.variables,
      min_interval_s=FLAGS.weights_min_interval_secs)
  publisher.start()
  done = threading.Event()
  counts = {"published": 0}
  learner = threading.Thread(target=_learner, name="learner", daemon=True,
                             args=(publisher, done, counts))
  actor = actor_lib.make_actor(
      reverb.Client(address), spec, num_envs=num_envs, unroll_length=unroll,
      seed=1, refresh_every=FLAGS.refresh_every,
      unroll_stride=preset.stride_for(unroll))
  meter = _Meter(actor.stats, num_envs, FLAGS.block, FLAGS.mode)
  originals = weights_lib.latest_version, weights_lib.fetch
  weights_lib.latest_version, weights_lib.fetch = (meter.latest_version,
                                                   meter.fetch)
  try:
    # The first unroll traces the policy: the learner starts after it.
    actor.run(max_unrolls=1)
    learner.start()
    meter.start()
    start = time.monotonic()
    actor.run(max_unrolls=1 + FLAGS.unrolls)
    seconds = time.monotonic() - start
  finally:
    weights_lib.latest_version, weights_lib.fetch = originals
    done.set()
    if learner.is_alive():
      learner.join()
    publisher.close()
    actor.close()
    server.stop()
  if publisher.error is not None:
    raise RuntimeError("the weights publisher failed") from publisher.error
  print(f"run: {FLAGS.unrolls} unrolls in {seconds:.1f} s "
        f"({FLAGS.unrolls / seconds:.2f} unrolls/s), "
        f"{counts['published']} publishes "
        f"({counts['published'] / seconds:.2f}/s)", flush=True)
  per_1000 = {}
  for phase in ("before", "after"):
    if not meter.frames[phase]:
      continue
    per_1000[phase] = 1000.0 * meter.bytes[phase] / meter.frames[phase]
    reads = f", {meter.reads} version reads" if phase == "after" else ""
    print(f"{phase}: {meter.frames[phase]} env steps, "
          f"{meter.fetches[phase]} full fetches{reads}, "
          f"{meter.bytes[phase]} bytes, {per_1000[phase]:.1f} bytes per "
          f"1000 env steps", flush=True)
  if FLAGS.mode == "both":
    print(f"before_bytes_per_1000_env_steps={per_1000['before']:.1f} "
          f"after_bytes_per_1000_env_steps={per_1000['after']:.1f} "
          f"ratio={per_1000['after'] / per_1000['before']:.4f}", flush=True)


if __name__ == "__main__":
  app.run(main)
