"""Bad command lines of the binaries (issue 18): exit code 1, exactly one
line on stderr, starting with "error: " and naming the flag, and no run
directory left behind.

Checks made before TensorFlow is imported (ranges, the agent, logdir kind,
every flag of the export and evaluate binaries) run the real binaries (a
fraction of a second each; tests/programs/test_before_tensorflow.py proves
that they import no TensorFlow). Checks that need the library (agent
config, environment) run in one process that parses each command line with
the binaries' own flags and check functions, so TensorFlow is imported
once; a few of those, and the actor's exit when its server is gone, also
run as real binaries.
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.training import procs
from tf_metagrad.programs import flags_check

_HINT = "(--helpfull lists every flag)"
_ENV = {k: v for k, v in dict(
    os.environ, PYTHONPATH=procs.ROOT, TF_CPP_MIN_LOG_LEVEL="3",
    PYTHONUNBUFFERED="1").items() if k != "TF_CONFIG"}
_ADDRESS = "--reverb_address=127.0.0.1:1"

# (binary, flags, text the error line must contain). A trainer case gets
# --logdir=<tmp>/run unless it sets --logdir itself.
_PARSE_CASES = [
    ("trainers.train", ["--agent=ppo"], "--agent=ppo: expected one of drmg, "
     "frodo, impala, mgrl, stac, stacx"),
    ("trainers.train", ["--logical_cpus=3"], "--logical_cpus=3: expected "
     "only with --strategy=mirrored (its replicas are the logical CPUs), got "
     "--strategy=default"),
    ("trainers.train", ["--logical_cpus=2", "--strategy=multi_worker"],
     "--logical_cpus=2: expected only with --strategy=mirrored"),
    ("trainers.train", ["--batch_size=0"], "--batch_size=0: expected an "
     "integer >= 1"),
    ("trainers.train", ["--unroll_length=0"], "--unroll_length=0:"),
    ("trainers.train", ["--unroll_stride=0"], "--unroll_stride=0: expected "
     "an integer >= 1"),
    ("trainers.train", ["--envs_per_actor=0"], "--envs_per_actor=0:"),
    ("trainers.train", ["--envs_per_actor=-3"], "--envs_per_actor=-3:"),
    ("trainers.train", ["--num_actors=-1"], "--num_actors=-1: expected an "
     "integer >= 0"),
    ("trainers.train", ["--num_actor_processes=-2"],
     "--num_actor_processes=-2:"),
    ("trainers.train", ["--total_env_steps=0"], "--total_env_steps=0:"),
    ("trainers.train", ["--seed=-1"], "--seed=-1: expected an integer in "
     "[0, 4294967295]"),
    ("trainers.train", ["--learning_rate=0"], "--learning_rate=0.0:"),
    ("trainers.train", ["--meta_learning_rate=nan"],
     "--meta_learning_rate=nan:"),
    ("trainers.train", ["--reverb_port=70000"], "--reverb_port=70000: "
     "expected an integer in [1, 65535]"),
    ("trainers.train", ["--queue_capacity=0"], "--queue_capacity=0:"),
    ("trainers.train", ["--reverb_port=@PORT"], "--reverb_port=@PORT: the "
     "port is in use"),
    ("trainers.train", ["--logical_cpus=-2"], "--logical_cpus=-2:"),
    ("trainers.train", ["--weights_every=0"], "--weights_every=0:"),
    ("trainers.train", ["--weights_min_interval_secs=-1"],
     "--weights_min_interval_secs=-1.0:"),
    ("trainers.train", ["--actor_refresh_every=0"],
     "--actor_refresh_every=0:"),
    ("trainers.train", ["--log_every_secs=nan"], "--log_every_secs=nan:"),
    ("trainers.train", ["--checkpoint_every_secs=-5"],
     "--checkpoint_every_secs=-5.0:"),
    ("trainers.train", ["--data_timeout_secs=0"], "--data_timeout_secs=0.0:"),
    ("trainers.train", ["--max_data_wait_secs=0"],
     "--max_data_wait_secs=0.0:"),
    ("trainers.train", ["--eval_episodes=-1"], "--eval_episodes=-1:"),
    ("trainers.train", ["--batch_size=abc"], "--batch_size=abc:"),
    ("trainers.train", ["--bacth_size=4"], "'bacth_size'"),
    ("trainers.train", ["--preset=huge"], "--preset=huge:"),
    ("trainers.train", ["--strategy=tpu"], "--strategy=tpu: expected "
     "--tpu=NAME"),
    ("trainers.train", ["--tpu=node-1"], "--tpu=node-1: expected only with "
     "--strategy=tpu"),
    ("trainers.train", ["--logdir=@FILE"], "--logdir=@FILE: names an "
     "existing file"),
    ("trainers.train", ["--logdir=@FILE/run"], "@FILE is a file"),
    ("trainers.train", ["--logdir=/proc/tf_metagrad_run"],
     "--logdir=/proc/tf_metagrad_run: cannot write in /proc"),
    ("trainers.train", ["--logdir="], "--logdir='':"),
    ("trainers.train", ["positional"], "Unexpected arguments: "
     "['positional']"),
    ("trainers.train", ["--actor_nice=20"], "--actor_nice=20: expected an "
     "integer in [0, 19]"),
    ("trainers.train", ["--actor_nice=5"], "--actor_nice=5: expected "
     "--num_actor_processes >= 1 too"),
    ("trainers.actor", [], "--reverb_address=None: expected HOST:PORT"),
    ("trainers.actor", ["--reverb_address=nonsense"],
     "--reverb_address=nonsense: expected HOST:PORT"),
    ("trainers.actor", ["--reverb_address=localhost:0"],
     "--reverb_address=localhost:0:"),
    ("trainers.actor", [_ADDRESS, "--num_envs=0"], "--num_envs=0:"),
    ("trainers.actor", [_ADDRESS, "--unroll_length=-1"],
     "--unroll_length=-1:"),
    ("trainers.actor", [_ADDRESS, "--refresh_every=0"], "--refresh_every=0:"),
    ("trainers.actor", [_ADDRESS, "--unroll_stride=0"], "--unroll_stride=0:"),
    ("trainers.actor", [_ADDRESS, "--max_unrolls=0"], "--max_unrolls=0:"),
    ("trainers.actor", [_ADDRESS, "--seed=-4"], "--seed=-4:"),
    ("trainers.actor", [_ADDRESS, "--nice=-1"], "--nice=-1:"),
    ("trainers.actor", [_ADDRESS, "--server_timeout_secs=0"],
     "--server_timeout_secs=0.0: expected a number > 0"),
    ("trainers.actor", [_ADDRESS, "--server_timeout_secs=inf"],
     "--server_timeout_secs=inf:"),
    ("export.export_policy", [], "--logdir=None:"),
    ("export.export_policy", ["--logdir=@RUN", "--output=@FILE"],
     "--output=@FILE: names an existing file"),
    ("export.export_policy", ["--logdir=@RUN", "--output=@FILE/model"],
     "@FILE is a file"),
    ("export.evaluate", [], "--saved_model=None:"),
    ("export.evaluate", ["--saved_model=@SM", "--episodes=0"],
     "--episodes=0: expected an integer >= 1"),
    ("export.evaluate", ["--saved_model=@SM", "--seed=-1"], "--seed=-1:"),
    ("export.evaluate", ["--saved_model=@SM", "--video_max_frames=0"],
     "--video_max_frames=0:"),
    ("export.evaluate", ["--saved_model=@SM", "--env_kwargs=[1]"],
     "--env_kwargs entries must look like name=value, got '[1]'. One JSON "
     "object is accepted too"),
    ("export.evaluate", ["--saved_model=@SM", "--env_kwargs={\"rows\": 6"],
     "--env_kwargs={\"rows\": 6: not a JSON object"),
    ("export.evaluate", ["--saved_model=@SM", "--video=ep.mp4"],
     "--video=ep.mp4: expected a FILE.gif path"),
    ("export.evaluate", ["--saved_model=@SM", "--video=@DIRGIF"],
     "--video=@DIRGIF: names a directory"),
]

# Checked in one process (see _RUNNER): binary -> [(flags, expected text)].
_LIBRARY_CASES = {
    "trainers.train": [
        (["--config=gamma=2"], "--config=gamma=2: gamma must be in [0, 1]"),
        (["--unroll_length=4", "--unroll_stride=5"], "--unroll_stride=5: "
         "expected an integer in [1, 4] (the item unroll length)"),
        (["--config=gama=0.9"], "--config gama: unknown field"),
        (["--config=gamma"], "--config entries must look like name=value"),
        (["--config=learning_rate=-1"], "--config=learning_rate=-1: "
         "learning_rate must be > 0"),
        (["--env=pong"], "--env=pong: Unknown environment name 'pong'"),
        (["--env=dmc:cartpole"], "--env=dmc:cartpole: 'dmc:cartpole' must "
         "look like dmc:<domain>-<task>"),
        (["--env_kwargs=bogus=1"], "--env_kwargs=bogus=1: CatchEnv.__init__()"
         " got an unexpected keyword argument 'bogus' (options of catch: "
         "rows, columns)"),
        (["--env_kwargs=rows=abc"], "--env_kwargs=rows=abc: rows must be an "
         "int"),
        (["--env_kwargs=rows"], "--env_kwargs entries must look like "
         "name=value"),
        (["--env=random_walk", "--env_kwargs=rows=3"],
         "options of random_walk: num_states, switch_every, left_rewards, "
         "right_reward, random_moves"),
    ],
    "trainers.actor": [
        ([_ADDRESS, "--agent=sarsa"], "--agent=sarsa:"),
        ([_ADDRESS, "--config=gamma=-1"], "--config=gamma=-1:"),
        ([_ADDRESS, "--env=nope"], "--env=nope:"),
        ([_ADDRESS, "--env_kwargs=bogus=1"], "--env_kwargs=bogus=1:"),
    ],
}

# Parses each case's flags with the binary's own flags and runs the checks
# its main runs before doing any work; prints one JSON list of error lines
# (None: nothing was rejected). The binaries define clashing flags
# (--agent, --env, --seed), so each one's flags are removed before the next
# binary is imported.
_RUNNER = r"""
import json
import sys

from absl import app
from absl import flags

from tf_metagrad.programs import cli

FLAGS = flags.FLAGS


def drop_flags(module):
  for flag in list(FLAGS.flags_by_module_dict().get(module, ())):
    delattr(FLAGS, flag.name)


def rejection(argv, check):
  FLAGS.unparse_flags()
  try:
    FLAGS(["binary"] + argv)
    check()
  except (flags.Error, cli.FlagError, app.UsageError) as e:
    return cli.one_line(e)
  return None


cases = json.loads(sys.argv[1])
out = {}
from tf_metagrad.programs import train
out["trainers.train"] = [rejection(a, train._options_and_spec)
                         for a in cases["trainers.train"]]
drop_flags("tf_metagrad.programs.train")
from tf_metagrad.programs import actor
out["trainers.actor"] = [rejection(a, actor._checked_flags)
                         for a in cases["trainers.actor"]]
from tf_metagrad import agents
out["agents"] = sorted(agents.AGENTS)
print(json.dumps(out))
"""

# trainers.actor as `python -m` runs it, with the weights fetch giving up
# after FETCH_S seconds instead of its fixed 30: with --server_timeout_secs
# equal to it, this is the default configuration (30 s and 30 s) scaled
# down, where the fetch and the watchdog give up at about the same time.
_SHORT_FETCH_ACTOR = r"""
import runpy
import sys

from tf_metagrad.system import weights

fetch_s = float(sys.argv.pop(1))
fetch = weights.fetch
weights.fetch = lambda client, timeout_s=30.0, should_stop=lambda: False: (
    fetch(client, timeout_s=fetch_s, should_stop=should_stop))
sys.argv[0] = "trainers.actor"
runpy.run_module("trainers.actor", run_name="__main__", alter_sys=True)
"""


def _substitute(text, paths):
  """`text` (a string or a list of them) with @NAME placeholders filled."""
  if isinstance(text, list):
    return [_substitute(t, paths) for t in text]
  for name in ("FILE", "RUN", "SM", "DIRGIF", "PORT"):
    text = text.replace("@" + name, paths[name])
  return text


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
  """Placeholder values, and a port that is in use while the tests run."""
  root = tmp_path_factory.mktemp("bad_inputs")
  (root / "file").write_text("not a directory")
  (root / "dir.gif").mkdir()
  with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield {"root": root, "FILE": str(root / "file"),
           "RUN": str(root / "no_run"), "SM": str(root / "no_saved_model"),
           "DIRGIF": str(root / "dir.gif"),
           "PORT": str(listener.getsockname()[1])}


def _run(argv, cwd, timeout=180):
  return subprocess.run(argv, cwd=cwd, env=_ENV, capture_output=True,
                        text=True, timeout=timeout)


def _binary(module, args, logdir=None):
  if module == "trainers.train" and not any(
      a.startswith("--logdir=") for a in args):
    args = [f"--logdir={logdir}"] + args
  return [sys.executable, "-m", module] + args


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def slow(paths):
  """Starts every process that imports TensorFlow at once (their start-up,
  not their checks, is what takes time) and yields name -> future."""
  root = paths["root"]
  cases = {binary: [_substitute(args, paths) for args, _ in rows]
           for binary, rows in _LIBRARY_CASES.items()}
  cases["trainers.train"] = [[f"--logdir={paths['RUN']}"] + args
                             for args in cases["trainers.train"]]
  port = _free_port()  # Closed again: nothing answers there.
  actor = ["--num_envs=2", "--unroll_length=2",
           f"--reverb_address=127.0.0.1:{port}"]
  commands = {
      "library": [sys.executable, "-c", _RUNNER, json.dumps(cases)],
      "mirrored": _binary("trainers.train", [
          "--strategy=mirrored", "--logical_cpus=3", "--batch_size=32"],
                          logdir=root / "mirrored"),
      "actor_timeout": _binary("trainers.actor",
                               actor + ["--server_timeout_secs=2"]),
      "actor_default": [sys.executable, "-c", _SHORT_FETCH_ACTOR, "2"] +
                       actor + ["--server_timeout_secs=2"],
      # _ENV has no TF_CONFIG.
      "multi_worker": _binary("trainers.train", ["--strategy=multi_worker"],
                              logdir=root / "multi_worker"),
  }
  with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
    yield {name: pool.submit(_run, argv, procs.ROOT)
           for name, argv in commands.items()}


def _assert_one_line(result, expected, prefix):
  assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].strip(), result.stderr[-3000:]
  assert lines[0].startswith(prefix), lines[0]
  assert expected in lines[0], (expected, lines[0])
  return lines[0]


def test_flags_rejected_while_parsing(slow, paths):
  del slow  # Only started: TensorFlow start-ups overlap with these cases.

  def run(case):
    index, (binary, args, expected) = case
    logdir = paths["root"] / f"run{index}"
    args = _substitute(args, paths)
    result = _run(_binary(binary, args, logdir), paths["root"], timeout=60)
    return binary, args, expected, logdir, result

  assert len(_PARSE_CASES) >= 20
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    outcomes = list(pool.map(run, enumerate(_PARSE_CASES)))
  for binary, args, expected, logdir, result in outcomes:
    line = _assert_one_line(result, _substitute(expected, paths), "error: ")
    assert line.endswith(_HINT), line
    assert not logdir.exists(), (args, line)
  assert not (paths["root"] / "runs").exists()
  assert not os.path.exists(paths["SM"])


def test_library_checks_name_the_flag(slow, paths):
  result = slow["library"].result()
  assert result.returncode == 0, result.stderr[-3000:]
  found = json.loads(result.stdout.splitlines()[-1])
  # The names the trainer checks --agent against before importing them.
  assert list(flags_check.AGENT_NAMES) == found["agents"]
  for binary, rows in _LIBRARY_CASES.items():
    assert len(found[binary]) == len(rows), binary
    for (args, expected), line in zip(rows, found[binary]):
      expected = _substitute(expected, paths)
      assert line is not None, (binary, args)
      assert "\n" not in line and expected in line, (binary, args, line)
  assert not os.path.exists(paths["RUN"])


def test_batch_not_divisible_by_replicas(slow, paths):
  line = _assert_one_line(slow["mirrored"].result(), "--batch_size=32: "
                          "expected a multiple of the 3 replicas of "
                          "--strategy=mirrored", "error: ")
  assert line.endswith(_HINT)
  assert not (paths["root"] / "mirrored").exists()


def test_multi_worker_without_tf_config_is_one_line(slow, paths):
  line = _assert_one_line(slow["multi_worker"].result(),
                          "--strategy=multi_worker: TF_CONFIG is not set",
                          "error: ")
  assert line.endswith(_HINT)
  assert not (paths["root"] / "multi_worker").exists()


@pytest.mark.parametrize("name", ["actor_timeout", "actor_default"])
def test_actor_without_server_exits_1_with_one_line(slow, name):
  # actor_default: the weights fetch and the watchdog give up together, as
  # with the default --server_timeout_secs; the fetch's error used to end
  # the process while the watchdog's ping was in flight, which aborted the
  # interpreter at exit (exit 134).
  result = slow[name].result()
  line = _assert_one_line(result, "has not answered for", "error: ")
  assert "the Reverb server at 127.0.0.1:" in line, line
  assert "actor done: unrolls=0" in result.stdout, result.stdout
