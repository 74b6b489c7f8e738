"""Actor threads and processes of a training run, restarted when they die.

An actor process writes its output (stdout and stderr) to
LOGDIR/actor_logs/actor_<i>.log. A child process needs an OS file
descriptor for that, which a local LOGDIR's file is; for a LOGDIR that is a
URL (gs://, ram://...; see `runs.is_local`) the child writes to a pipe, and
a thread of the trainer appends what comes out of it to the log file
through `tf.io.gfile` (`copy_output`). Such a log is then written by the
trainer: it is complete once the process has exited (`ActorPool.stop`
waits for it), and while the process runs it lags at most `FLUSH_EVERY_S`
behind. Actor processes themselves never touch LOGDIR, so they run
with a LOGDIR of any file system, even one only the trainer's process can
see such as ram://.
"""

import os
import select
import subprocess
import sys
import threading
import time
from typing import BinaryIO, Callable, Dict, List, Mapping, Optional

import reverb
import tensorflow as tf

import tf_metagrad

from tf_metagrad import runs
from tf_metagrad.system import native_logs
from tf_metagrad.system import reverb_actor as system_actor
from tf_metagrad.training import options as options_lib

FLUSH_EVERY_S = 5.0  # Most time a copied actor log lags behind its output.


def copy_output(pipe: BinaryIO, path: str,
                log: Callable[[str], None]) -> None:
  """Appends what comes out of `pipe` to the file `path` until every writer
  has closed the pipe, then closes both.

  Flushes at most every `FLUSH_EVERY_S` (object stores upload the whole file
  at each flush), and within that time of any output, also when the child
  falls silent.

  Args:
    pipe: the reading end of a child process's output.
    path: the log file (any `tf.io.gfile` path).
    log: one-line logger, told once if `path` cannot be written.
  """
  fd = pipe.fileno()
  with pipe:
    try:
      with tf.io.gfile.GFile(path, "ab") as f:
        flushed, dirty = time.monotonic(), False
        while True:
          wait = (max(0.0, FLUSH_EVERY_S - (time.monotonic() - flushed))
                  if dirty else None)
          if select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
              return
            f.write(chunk)
            dirty = True
          if dirty and time.monotonic() - flushed >= FLUSH_EVERY_S:
            f.flush()
            flushed, dirty = time.monotonic(), False
    except tf.errors.OpError as e:
      log(f"cannot write {path} ({e.message.splitlines()[0]}); the rest of "
          f"that actor's output is dropped")
      # Read on: a full pipe would block the child at its next write.
      while os.read(fd, 65536):
        pass


def process_environment(base: Mapping[str, str]) -> Dict[str, str]:
  """The environment of an actor process: `base` (the trainer's) with the
  checkout and the trainer's working directory on PYTHONPATH and no
  visible GPU.

  The working directory is where the trainer imports the user's own
  environment modules from (`gym:my_envs:MyCorridor-v0`; see
  `tf_metagrad.programs.scripts`), so the actor processes find them too; it
  is left out, as there, when Python runs with -P / PYTHONSAFEPATH.

  An actor's policy calls are small (a batch of a few frames) and run on the
  CPU anyway (`system.reverb_actor`); a process that saw the GPUs would
  still have TensorFlow reserve memory on each of them at start-up, beside
  the learner. CUDA_VISIBLE_DEVICES=-1 hides them from CUDA itself. TPU chips
  are not hidden: libtpu has no documented setting for "no chips", and
  PyPI's tensorflow 2.15.1 bundles no libtpu (docs/SCALING.md, "4. A
  Cloud TPU VM").
  """
  # The folder holding the tf_metagrad package, so that a checkout that is
  # not installed works too.
  package = os.path.dirname(os.path.abspath(tf_metagrad.__file__))
  paths = [os.path.dirname(package)]
  if not sys.flags.safe_path and os.getcwd() not in paths:
    paths.append(os.getcwd())
  env = dict(base, PYTHONPATH=os.pathsep.join(
      paths + [p for p in [base.get("PYTHONPATH")] if p]),
             CUDA_VISIBLE_DEVICES="-1")
  # Its stderr is the log file, which no filter of ours reads yet.
  env.pop(native_logs.FILTERED_ENV, None)
  return env


class ActorPool:
  """Actor threads and/or processes, restarted when they die.

  Args:
    spec: the run.
    options: the session's `training.options.Options` (actor counts,
      copies per actor, refresh period, logdir for the processes' logs).
    address: "host:port" of the Reverb server.
    unroll: item unroll length the actors write.
    stride: steps between an actor's consecutive items
      (`system.reverb_actor`).
    stop: set when the run stops; no restarts after that.
    log: one-line logger.
  """

  def __init__(self, spec: runs.RunSpec, options: options_lib.Options,
               address: str, unroll: int, stop: threading.Event,
               log: Callable[[str], None], stride: Optional[int] = None
               ) -> None:
    self._spec = spec
    self._options = options
    self._address = address
    self._unroll = unroll
    self._stride = unroll if stride is None else stride
    self._stop = stop
    self._log = log
    self.threads: List[Optional[system_actor.ActorThread]] = []
    self.processes: List[Optional[subprocess.Popen]] = []
    self.restarts = 0
    self._generation = 0
    self._failures: Dict[str, int] = {}
    # The thread copying each actor process's log (see `copy_output`).
    self._copiers: Dict[int, threading.Thread] = {}

  def _failed(self, key: str, productive: bool, error) -> None:
    """Counts back-to-back failures of an actor that never wrote an unroll;
    a persistent error (bad config, broken env) ends the run instead of
    restarting forever."""
    self._failures[key] = 0 if productive else self._failures.get(key, 0) + 1
    if self._failures[key] >= 3:
      raise RuntimeError(
          f"{key} failed 3 times in a row before writing any data; last "
          f"error: {error}")

  def _seed(self, index: int) -> int:
    """The seed of actor `index`'s next start: a restarted actor does not
    repeat its predecessor's episodes."""
    self._generation += 1
    return self._spec.seed * 1000 + 7 * index + 100_003 * self._generation

  def _thread(self, index: int) -> system_actor.ActorThread:
    seed = self._seed(index)
    thread = system_actor.ActorThread(
        lambda: system_actor.make_actor(
            reverb.Client(self._address), self._spec,
            num_envs=self._options.envs_per_actor,
            unroll_length=self._unroll, seed=seed,
            refresh_every=self._options.actor_refresh_every,
            unroll_stride=self._stride),
        self._stop, f"actor-{index}")
    thread.start()
    return thread

  def _process(self, index: int) -> subprocess.Popen:
    spec, options = self._spec, self._options
    log_dir = os.path.join(options.logdir, "actor_logs")
    tf.io.gfile.makedirs(log_dir)
    cmd = [sys.executable, "-m", "tf_metagrad.programs.actor",
           f"--reverb_address={self._address}", f"--agent={spec.agent}",
           f"--env={spec.env}", f"--num_envs={options.envs_per_actor}",
           f"--unroll_length={self._unroll}",
           f"--unroll_stride={self._stride}",
           f"--seed={self._seed(index)}",
           f"--refresh_every={options.actor_refresh_every}",
           # The trainer restarts its own actors; one orphaned by a killed
           # trainer should not wait for a learner for the default 600 s.
           "--server_timeout_secs=30"]
    if options.actor_nice:
      cmd.append(f"--nice={options.actor_nice}")
    for name, value in spec.config_overrides.items():
      if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
      cmd.append(f"--config={name}={value}")
    for name, value in spec.env_kwargs.items():
      cmd.append(f"--env_kwargs={name}={value!r}")
    env = process_environment(os.environ)
    log_path = os.path.join(log_dir, f"actor_{index}.log")
    if runs.is_local(log_path):
      # The one write that bypasses tf.io.gfile: a child's output needs an
      # OS file descriptor. The child holds its own copy once started.
      with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file,
                                stderr=subprocess.STDOUT, env=env)
    else:
      proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env)
      previous = self._copiers.get(index)

      def copy(pipe=proc.stdout):
        # One writer per log at a time: an object store keeps only the
        # content of the last writer to close it.
        if previous is not None:
          previous.join()
        copy_output(pipe, log_path, self._log)

      self._copiers[index] = threading.Thread(
          target=copy, name=f"actor-{index}-log", daemon=True)
      self._copiers[index].start()
    proc.started = time.monotonic()
    self._log(f"started actor process {index} pid={proc.pid}")
    return proc

  def start(self) -> None:
    """Starts the actors one by one, each listed as soon as it runs, so
    that `stop` also stops those of a start that failed part-way."""
    for i in range(self._options.num_actors):
      self.threads.append(self._thread(i))
    for i in range(self._options.num_actor_processes):
      self.processes.append(self._process(i))

  def supervise(self) -> None:
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

  def stop(self, timeout_s: float = 30.0) -> None:
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
    for copier in self._copiers.values():
      copier.join(max(0.1, deadline - time.monotonic()))
