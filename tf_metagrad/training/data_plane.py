"""What moves data around the learner during a session, started and stopped
as one unit:

  actors (threads | processes | remote) --unroll items--> Reverb queue
  Reverb queue --input (in the step, or staged)--> learner
  learner --weights publisher--> Reverb --> actors
  learner --snapshots--> periodic evaluator

`DataPlane` starts the parts one by one and registers each one's stop as
soon as it runs (`contextlib.ExitStack`), so a start that fails part-way
stops what it started, and stopping, in the reverse order of starting, is
written down once: the learner's input, the actors, the publisher, the
server, and last the periodic evaluator, whose bounded wait must not keep
the others running.
"""

import contextlib
import dataclasses
from typing import Any, Iterator, Optional

import reverb

from tf_metagrad import runs
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import dataset as dataset_lib
from tf_metagrad.system import items
from tf_metagrad.system import run_info
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import staged_input
from tf_metagrad.system import weights as weights_lib
from tf_metagrad.training import actor_pool
from tf_metagrad.training import greedy_eval
from tf_metagrad.training import opening
from tf_metagrad.training import session as session_lib


class DataPlane:
  """The Reverb server, weights publisher, actors, learner input and
  periodic evaluator of one session; a context manager that starts them
  on entry and stops them on exit (see the module docstring).

  Args:
    session: the running session (its options, processes, counters, stop
      request, reports and log).
    run: the session's plan (spec, item unroll length, stride).
    network: the learner's network (its weights are published).
  """

  def __init__(self, session: session_lib.Session, run: opening.Plan,
               network: networks_lib.AgentNetwork) -> None:
    self._session = session
    self._run = run
    self._network = network
    self._options = session.options
    self._cluster = session.cluster
    self._log = session.log
    self._stack = contextlib.ExitStack()
    self.server: Optional[reverb.Server] = None
    self.publisher: Optional[weights_lib.Publisher] = None
    self.pool: Optional[actor_pool.ActorPool] = None
    self.evaluator: Optional[greedy_eval.PeriodicEvaluator] = None
    self._staged: Optional[staged_input.StagedInput] = None
    self._dataset = None

  def __enter__(self) -> "DataPlane":
    with contextlib.ExitStack() as stack:
      # First in, last out (see the module docstring).
      self._start_evaluator(stack)
      client, item_spec = self._start_server(stack)
      self._start_publisher(client, stack)
      self._start_actors(stack)
      self._start_input(item_spec, stack)
      self._stack = stack.pop_all()
    return self

  def __exit__(self, *exc_info: Any) -> None:
    self._stack.close()

  # ------------------------------------------------------------- starting
  def _start_evaluator(self, stack):
    options = self._options
    if not (options.eval_every_env_steps and self._cluster.writes_run_dir):
      return
    self.evaluator = greedy_eval.PeriodicEvaluator(
        self._run.spec, self._network.variables,
        options.eval_every_env_steps, options.eval_episodes,
        self._session.counts.env)
    stack.callback(self._stop_evaluator)
    self.evaluator.start()

  def _start_server(self, stack):
    """Starts the server and publishes the first weights and, after them,
    the run info (an actor that finds the run info finds weights too);
    returns a client of it and the queue's item spec."""
    spec, options, variables = (self._run.spec, self._options,
                                self._network.variables)
    observation_spec, action_space = runs.env_specs(spec)
    item_spec = items.item_spec(
        observation_spec, action_space, self._run.unroll,
        core_state_spec=self._network.core_state_spec())
    self.server = server_lib.start_server(
        server_lib.make_tables(
            item_spec, server_lib.weights_signature(variables),
            server_lib.queue_capacity(options.batch_size,
                                      options.envs_per_actor,
                                      options.queue_capacity)),
        port=options.reverb_port)
    stack.callback(self.server.stop)
    client = reverb.Client(self.address)
    weights_lib.publish(client, variables, self._session.counts.learner)
    run_info.publish(client, run_info.describe(
        spec, self._run.unroll, item_spec, options.envs_per_actor,
        options.actor_refresh_every, unroll_stride=self._run.stride))
    port = self.server.port
    self._log(
        f"reverb server on port {port} (actors: --reverb_address=HOST:"
        f"{port}); agent={spec.agent} env={spec.env} unroll="
        f"{self._run.unroll} batch={options.batch_size} replicas="
        f"{self._cluster.strategy.num_replicas_in_sync}")
    self._log(f"note: dm-reverb 0.14 listens on all interfaces (port "
              f"{port}) and cannot bind to 127.0.0.1 only; firewall the "
              f"port if other machines must not reach it")
    return client, item_spec

  def _start_publisher(self, client, stack):
    self.publisher = weights_lib.Publisher(
        client, self._network.variables,
        min_interval_s=self._options.weights_min_interval_s)
    stack.callback(self.publisher.close)
    self.publisher.start()

  def _start_actors(self, stack):
    spec, session = self._run.spec, self._session
    # The actor processes log to this worker's directory.
    self.pool = actor_pool.ActorPool(
        dataclasses.replace(spec, seed=self._cluster.actor_seed(spec.seed)),
        dataclasses.replace(self._options, logdir=session.own_logdir),
        self.address, self._run.unroll, session.stop.event, self._log,
        stride=self._run.stride)
    # Before starting: a start that fails part-way stops those it started.
    stack.callback(self.pool.stop)
    self.pool.start()

  def _start_input(self, item_spec, stack):
    options, strategy = self._options, self._cluster.strategy
    timeout_ms = int(options.data_timeout_s * 1000)
    if not self._cluster.stages_input:
      self._dataset = dataset_lib.distributed_dataset(
          strategy, self.address, item_spec, options.batch_size, timeout_ms)
      return
    self._staged = staged_input.StagedInput(
        strategy, self.address, item_spec, options.batch_size, timeout_ms,
        capacity=2 * options.steps_per_call)
    self._staged.start()
    stack.callback(self._staged.close)
    self._dataset = self._staged.dataset()

  # ------------------------------------------------------------- stopping
  def _stop_evaluator(self):
    # Bounded: an evaluation of a policy that never ends its episodes must
    # not hold up the checkpointed run's exit, and a stopped run (SIGTERM)
    # should exit promptly.
    complete = (self._session.counts.env
                >= self._options.total_env_steps)
    wait_s = 60.0 if complete else 5.0
    if not self.evaluator.close(timeout_s=wait_s):
      self._log(f"periodic evaluation still running after {wait_s:.0f}s; "
                f"abandoned")
    self._write_evaluations()
    if self.evaluator.error is not None:
      self._log(f"periodic evaluation failed: {self.evaluator.error!r}")
    if self.evaluator.skipped:
      self._log(f"{self.evaluator.skipped} periodic evaluation(s) skipped "
                f"while the previous one was running")

  # ------------------------------------------------- what the loop uses
  @property
  def address(self) -> str:
    """"host:port" of the server."""
    return server_lib.local_address(self.server.port)

  @property
  def actor_restarts(self) -> int:
    return self.pool.restarts if self.pool is not None else 0

  def supervise(self) -> None:
    """Restarts dead actors; raises RuntimeError for one that keeps
    failing (`ActorPool.supervise`)."""
    self.pool.supervise()

  def wait_for_batches(self, num_steps: int) -> Optional[bool]:
    """Whether this worker holds the batches of a call of `num_steps`
    steps: True/False for staged input (after waiting up to the data
    timeout), None when the step reads them itself (known only then).

    Raises:
      RuntimeError: the staging thread failed.
    """
    if self._staged is None:
      return None
    return self._staged.wait_ready(num_steps, self._options.data_timeout_s)

  def batches(self) -> Iterator[Any]:
    """A new iterator of the learner's input (after one that ran dry)."""
    return iter(self._dataset)

  def offer_weights(self, version: int) -> None:
    """Offers the network's weights to the publisher (`Publisher.offer`)."""
    self.publisher.offer(version)

  def evaluate(self, env_steps: int, learner_steps: int) -> None:
    """Offers the weights to the periodic evaluator, if any, and writes the
    evaluations that finished."""
    if self.evaluator is not None:
      self.evaluator.offer(env_steps, learner_steps)
      self._write_evaluations()

  def _write_evaluations(self):
    for env_steps, learner_steps, mean in self.evaluator.results():
      self._session.reporter.write_eval(env_steps, learner_steps, mean)
      self._log(f"eval/mean_return={mean:.4f} at env_steps={env_steps} "
                f"({self._options.eval_episodes} greedy episodes)")
