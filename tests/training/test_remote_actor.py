"""`trainers.actor` given only the address: it takes the run from the
server's run info, holds the flags it is given to the learner's, outlives
its server, and builds no environment whose name imports a module unless
its own --env names it.

The "learner" here is this test: a Reverb server on localhost with the run
info and weights a trainer publishes, stopped and started again on the
same port, so each restart happens at a line the actor printed.
"""

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import reverb

from tests.training import procs
from tf_metagrad import envs
from tf_metagrad import runs
from tf_metagrad.system import items
from tf_metagrad.system import run_info
from tf_metagrad.system import server as server_lib
from tf_metagrad.system import weights as weights_lib

T = 4
TINY = {"mlp_hidden_sizes": (16,), "head_hidden_sizes": (16,)}


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class _Learner:
  """A server as a trainer of `spec` runs it: its tables, weights of
  version `version` and run info with a new run id."""

  def __init__(self, spec, port, version, envs_per_actor=3):
    network = runs.build_learner(spec).network
    env = runs.make_env(spec)
    self.item_spec = items.item_spec(
        env.observation_spec, env.action_space, T,
        core_state_spec=network.core_state_spec())
    env.close()
    self.server = server_lib.start_server(server_lib.make_tables(
        self.item_spec, server_lib.weights_signature(network.variables), 8),
                                          port=port)
    self.client = reverb.Client(server_lib.local_address(port))
    weights_lib.publish(self.client, network.variables, version)
    self.info = run_info.describe(spec, T, self.item_spec, envs_per_actor)
    run_info.publish(self.client, self.info)

  def wait_for_items(self, count, timeout_s=120.0):
    """Waits (bounded) until the queue holds `count` items."""
    deadline = time.monotonic() + timeout_s
    while self.client.server_info(timeout=10)[
        server_lib.TRAJECTORY_TABLE].current_size < count:
      assert time.monotonic() < deadline, f"fewer than {count} items"
      time.sleep(0.05)

  def stop(self):
    self.server.stop()


def _start_actor(flags, stderr_path, extra_path=None):
  """The actor binary; stdout is read line by line, stderr goes to a file
  (its one error line is checked there). `extra_path` is added to its
  PYTHONPATH."""
  env = procs.environment()
  if extra_path is not None:
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(extra_path)])
  with open(stderr_path, "w") as stderr:
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.actor", *flags], cwd=procs.ROOT,
        env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _exit_of(proc, stderr_path, lines, timeout_s=120):
  """(exit code, stdout, stderr) once `proc` ended; a hang fails the test."""
  try:
    out, _ = proc.communicate(timeout=timeout_s)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.communicate()
    raise AssertionError(f"no exit within {timeout_s}s:\n"
                         + "".join(lines)) from None
  with open(stderr_path) as f:
    return proc.returncode, "".join(lines) + out, f.read()


def _one_error_line(stderr):
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr
  return lines[0]



def _run_together(cases, tmp_path, learners):
  """Runs an actor per case, {name: (flags, extra_path)}, all started
  together so that their TensorFlow start-ups overlap; returns
  {name: _exit_of(...)} and stops `learners` in any case."""
  actors = {name: _start_actor(flags, tmp_path / name, extra_path)
            for name, (flags, extra_path) in cases.items()}
  try:
    return {name: _exit_of(proc, tmp_path / name, [])
            for name, proc in actors.items()}
  finally:
    for proc in actors.values():
      if proc.poll() is None:
        proc.kill()
    for learner in learners:
      learner.stop()

def test_an_actor_of_the_address_alone_survives_server_restarts(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY,
                      seed=2)
  port = _free_port()
  address = f"--reverb_address=127.0.0.1:{port}"
  # Started before any server listens: it waits for the learner.
  actor = _start_actor([address, "--server_timeout_secs=120"],
                       tmp_path / "stderr")
  lines = []
  try:
    first = _Learner(spec, port, version=3)
    feeding = procs.read_until(actor, lambda l: "actor: feeding run" in l,
                               lines)
    assert first.info.run_id in feeding
    # The learner's settings: 3 copies per actor, T items.
    assert "num_envs=3" in feeding and f"unroll_length={T}" in feeding
    first.wait_for_items(1)
    first.stop()
    procs.read_until(actor, lambda l: "stopped answering" in l, lines)

    second = _Learner(spec, port, version=7)
    back = procs.read_until(actor, lambda l: "reconnected" in l, lines)
    assert f"a restarted learner (run {second.info.run_id})" in back
    # It writes again, into the new server's queue.
    second.wait_for_items(1)
    second.stop()
    procs.read_until(actor, lambda l: "stopped answering" in l, lines)

    # A learner of another run on the port: the actor cannot feed it.
    third = _Learner(runs.RunSpec(agent="stac", env="random_walk",
                                  config_overrides=TINY), port, version=9)
    code, out, stderr = _exit_of(actor, tmp_path / "stderr", lines)
    third.stop()
  finally:
    if actor.poll() is None:
      actor.kill()
  assert code == 1, out + stderr
  line = _one_error_line(stderr)
  assert "came back with another run (env: 'catch' -> 'random_walk'" in line
  assert "Traceback" not in out + stderr
  # The restarted learner's weights were fetched; the third's never were.
  assert re.search(r"actor done: unrolls=[1-9]\d* env_steps=\d+ "
                   r"weights_version=7\n", out), out


def test_flags_are_held_to_the_learners(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY)
  port = _free_port()
  learner = _Learner(spec, port, version=1)
  address = f"--reverb_address=127.0.0.1:{port}"
  cases = {
      "env": ([address, "--env=random_walk"],
              "--env=random_walk: differs from the learner's catch"),
      "config": ([address, "--agent=stac", "--config=mlp_hidden_sizes=32"],
                 "--config=mlp_hidden_sizes=(32,): differs from the "
                 "learner's mlp_hidden_sizes=(16,)"),
      "unroll": ([address, f"--unroll_length={T + 1}"],
                 f"--unroll_length={T + 1}: differs from the learner's {T}"),
      # What the trainer's own actor processes pass: all of it, with the
      # copies, seed and refresh period they may choose.
      "allowed": ([address, "--agent=stac", "--env=catch",
                   f"--unroll_length={T}", "--config=mlp_hidden_sizes=16",
                   "--config=head_hidden_sizes=16", "--num_envs=2",
                   "--seed=5", "--refresh_every=2", "--max_unrolls=2"],
                  None),
  }
  results = _run_together(
      {name: (flags, None) for name, (flags, _) in cases.items()}, tmp_path,
      [learner])
  for name, (_, expected) in cases.items():
    code, out, stderr = results[name]
    if expected is None:
      assert code == 0, out + stderr
      assert "num_envs=2 seed=5 refresh_every=2" in out, out
      assert "actor done: unrolls=2 " in out, out
    else:
      assert code == 1, (name, out + stderr)
      line = _one_error_line(stderr)
      assert expected in line, (name, line)
      assert "actor done: unrolls=0 " in out, out


def test_an_actor_gives_up_after_server_timeout_secs(tmp_path):
  spec = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY)
  port = _free_port()
  learner = _Learner(spec, port, version=1)
  actor = _start_actor([f"--reverb_address=127.0.0.1:{port}",
                        "--server_timeout_secs=4"], tmp_path / "stderr")
  lines = []
  try:
    procs.read_until(actor, lambda l: "actor: feeding run" in l, lines)
    learner.wait_for_items(1)
    learner.stop()
    code, out, stderr = _exit_of(actor, tmp_path / "stderr", lines)
  finally:
    if actor.poll() is None:
      actor.kill()
  assert code == 1, out + stderr
  line = _one_error_line(stderr)
  assert re.search(rf"the Reverb server at 127.0.0.1:{port} has not "
                   r"answered for [4-9]s", line), line
  assert "Traceback" not in out + stderr
  assert re.search(r"actor done: unrolls=[1-9]", out), out


def test_ctrl_c_while_waiting_for_a_learner_exits_0(tmp_path):
  actor = _start_actor([f"--reverb_address=127.0.0.1:{_free_port()}"],
                       tmp_path / "stderr")
  lines = []
  try:
    # Nothing listens there: it would wait for a learner for 600 s.
    procs.read_until(actor, lambda l: "actor: reading the run" in l, lines)
    actor.send_signal(signal.SIGINT)
    code, out, stderr = _exit_of(actor, tmp_path / "stderr", lines)
  finally:
    if actor.poll() is None:
      actor.kill()
  assert code == 0, out + stderr
  assert "actor done: unrolls=0 " in out, out
  assert not stderr.strip(), stderr


CHECK_CALL = "dm_env:subprocess:check_call"
USER_DM_ENV = "dm_env:tests.envs.user_envs:make_corridor"


def test_an_actor_runs_code_named_by_the_server_only_if_its_env_names_it(
    tmp_path):
  # The payload is live: built, this name runs the env_kwargs as a command.
  proof = tmp_path / "proof"
  with pytest.raises(TypeError):
    envs.make(CHECK_CALL, seed=0, args=["touch", str(proof)])
  assert proof.exists()

  catch = runs.RunSpec(agent="stac", env="catch", config_overrides=TINY)
  # Run infos as anyone who reaches the port can publish them.
  command = _Learner(catch, _free_port(), version=1)
  ran = tmp_path / "ran"
  run_info.publish(command.client, dataclasses.replace(
      command.info, env=CHECK_CALL, env_kwargs={"args": ["touch", str(ran)]}))
  # A module of the actor host's path that records being imported.
  modules = tmp_path / "modules"
  modules.mkdir()
  imported = tmp_path / "imported"
  (modules / "marks_import.py").write_text(
      f"open({str(imported)!r}, 'w').close()\n")
  module = _Learner(catch, _free_port(), version=1)
  run_info.publish(module.client, dataclasses.replace(
      module.info, env="gym:marks_import:Corridor-v0"))
  user = _Learner(runs.RunSpec(agent="stac", env=USER_DM_ENV,
                               config_overrides=TINY), _free_port(),
                  version=1)

  def address(learner):
    return f"--reverb_address=127.0.0.1:{learner.server.port}"

  cases = {
      "command": ([address(command)], None),
      # Another --env does not allow it either.
      "module": ([address(module), "--env=catch"], modules),
      "allowed": ([address(user), f"--env={USER_DM_ENV}", "--max_unrolls=2"],
                  None),
  }
  results = _run_together(cases, tmp_path, [command, module, user])

  code, out, stderr = results["command"]
  assert code == 1, out + stderr
  assert _one_error_line(stderr) == (
      f"error: refusing env '{CHECK_CALL}' of the run at "
      f"127.0.0.1:{command.server.port}: building it imports a module its "
      f"name picks, which an actor does only when its own command line "
      f"names that env; to allow it, pass --env={CHECK_CALL}")
  assert not ran.exists()
  assert "actor done: unrolls=0 " in out, out

  code, out, stderr = results["module"]
  assert code == 1, out + stderr
  line = _one_error_line(stderr)
  assert ("refusing env 'gym:marks_import:Corridor-v0'" in line and
          "(this actor has --env=catch); to allow it, pass "
          "--env=gym:marks_import:Corridor-v0" in line), line
  assert not imported.exists()
  # ... though the actor could have imported it.
  subprocess.run([sys.executable, "-c", "import marks_import"], check=True,
                 cwd=modules, timeout=60)
  assert imported.exists()

  code, out, stderr = results["allowed"]
  assert code == 0, out + stderr
  assert f"env={USER_DM_ENV} " in out, out
  assert "actor done: unrolls=2 " in out, out
