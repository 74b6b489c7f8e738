"""Actor threads and processes of a training run, restarted when they die."""

import os
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

import reverb
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.system import actor as system_actor


class ActorPool:
  """Actor threads and/or processes, restarted when they die.

  Args:
    spec: the run.
    options: the run's `trainers.loop.Options` (actor counts, copies per
      actor, refresh period, logdir for the processes' logs).
    address: "host:port" of the Reverb server.
    unroll: item unroll length the actors write.
    stop: set when the run stops; no restarts after that.
    log: one-line logger.
  """

  def __init__(self, spec: runs.RunSpec, options, address: str,
               unroll: int, stop: threading.Event, log):
    self._spec = spec
    self._options = options
    self._address = address
    self._unroll = unroll
    self._stop = stop
    self._log = log
    self.threads: List[Optional[system_actor.ActorThread]] = []
    self.processes: List[Optional[subprocess.Popen]] = []
    self.restarts = 0
    self._generation = 0
    self._failures: Dict[str, int] = {}

  def _failed(self, key: str, productive: bool, error) -> None:
    """Counts back-to-back failures of an actor that never wrote an unroll;
    a persistent error (bad config, broken env) ends the run instead of
    restarting forever."""
    self._failures[key] = 0 if productive else self._failures.get(key, 0) + 1
    if self._failures[key] >= 3:
      raise RuntimeError(
          f"{key} failed 3 times in a row before writing any data; last "
          f"error: {error}")

  def _thread(self, index: int) -> system_actor.ActorThread:
    spec, options = self._spec, self._options
    self._generation += 1
    seed = spec.seed * 1000 + 7 * index + 100_003 * self._generation

    def make():
      config = runs.agent_config(spec)
      env = runs.make_env(spec)
      try:
        network = networks_lib.make_network(config, env.observation_spec,
                                            env.action_space)
      finally:
        env.close()
      return system_actor.Actor(
          reverb.Client(self._address), spec.env, network,
          num_envs=options.envs_per_actor, unroll_length=self._unroll,
          seed=seed, env_kwargs=spec.env_kwargs,
          refresh_every=options.actor_refresh_every)

    thread = system_actor.ActorThread(make, self._stop, f"actor-{index}")
    thread.start()
    return thread

  def _process(self, index: int) -> subprocess.Popen:
    spec, options = self._spec, self._options
    self._generation += 1
    log_dir = os.path.join(options.logdir, "actor_logs")
    tf.io.gfile.makedirs(log_dir)
    cmd = [sys.executable, "-m", "trainers.actor",
           f"--reverb_address={self._address}", f"--agent={spec.agent}",
           f"--env={spec.env}", f"--num_envs={options.envs_per_actor}",
           f"--unroll_length={self._unroll}",
           f"--seed={spec.seed * 1000 + 7 * index + 100_003 * self._generation}",
           f"--refresh_every={options.actor_refresh_every}"]
    for name, value in spec.config_overrides.items():
      if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
      cmd.append(f"--config={name}={value}")
    for name, value in spec.env_kwargs.items():
      cmd.append(f"--env_kwargs={name}={value!r}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    # The one write that bypasses tf.io.gfile: a child's output needs an OS
    # file descriptor. The child holds its own copy once started.
    with open(os.path.join(log_dir, f"actor_{index}.log"), "ab") as log_file:
      proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                              cwd=root, env=env)
    proc.started = time.monotonic()
    self._log(f"started actor process {index} pid={proc.pid}")
    return proc

  def start(self):
    self.threads = [self._thread(i) for i in range(self._options.num_actors)]
    self.processes = [self._process(i)
                      for i in range(self._options.num_actor_processes)]

  def supervise(self):
    """Restarts dead actors (never while stopping)."""
    if self._stop.is_set():
      return
    for i, thread in enumerate(self.threads):
      if not thread.is_alive():
        self._failed(f"actor thread {i}",
                     thread.actor is not None and thread.actor.stats.unrolls,
                     repr(thread.error))
        self._log(f"actor thread {i} died ({thread.error!r}); restarting")
        self.threads[i] = self._thread(i)
        self.restarts += 1
    for i, proc in enumerate(self.processes):
      if proc.poll() is not None:
        self._failed(f"actor process {i}",
                     time.monotonic() - proc.started > 30.0,
                     f"exit code {proc.returncode}, see "
                     f"{os.path.join(self._options.logdir, 'actor_logs')}")
        self._log(f"actor process {i} (pid {proc.pid}) exited with "
                  f"{proc.returncode}; restarting")
        self.processes[i] = self._process(i)
        self.restarts += 1

  def actor_env_steps(self) -> int:
    return sum(t.actor.stats.env_steps for t in self.threads
               if t.actor is not None)

  def stop(self, timeout_s: float = 30.0):
    self._stop.set()
    for proc in self.processes:
      if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + timeout_s
    for thread in self.threads:
      thread.join(max(0.0, deadline - time.monotonic()))
    for proc in self.processes:
      try:
        proc.wait(max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
