"""The wheel installs only the tf_metagrad namespace, and its console scripts
work from a fresh virtual environment outside the checkout."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SCRIPTS = {
    # console script: a flag its --help must list
    "tf-metagrad-train": "--total_env_steps",
    "tf-metagrad-actor": "--reverb_address",
    "tf-metagrad-export": "--checkpoint",
    "tf-metagrad-evaluate": "--saved_model",
    "tf-metagrad-plot": "--output",
}


def _run(args, cwd, env=None, timeout=300):
  result = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
  assert result.returncode == 0, (args, result.stdout[-2000:],
                                  result.stderr[-3000:])
  return result


@pytest.fixture(name="wheel", scope="module")
def wheel_fixture(tmp_path_factory):
  """Builds the wheel from a copy of the sources (the build writes build/
  and egg-info folders, which must not land in the checkout)."""
  src = tmp_path_factory.mktemp("src")
  for name in ("setup.py", "setup.cfg", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src)
  shutil.copytree(os.path.join(ROOT, "tf_metagrad"), src / "tf_metagrad",
                  ignore=shutil.ignore_patterns("__pycache__"))
  dist = tmp_path_factory.mktemp("dist")
  _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
        "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
       cwd=src)
  (path,) = dist.glob("tf_metagrad-*.whl")
  return path


def test_wheel_holds_only_the_tf_metagrad_namespace(wheel):
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    entry_points = next(archive.read(n).decode() for n in names
                        if n.endswith(".dist-info/entry_points.txt"))
  tops = {n.split("/")[0] for n in names}
  version = re.match(r"tf_metagrad-([^-]+)-", wheel.name).group(1)
  assert tops == {"tf_metagrad", f"tf_metagrad-{version}.dist-info"}, tops
  for module in ("tf_metagrad/py.typed", "tf_metagrad/trainers/train.py",
                 "tf_metagrad/export/serving.py", "tf_metagrad/scripts.py"):
    assert module in names
  for script in _SCRIPTS:
    assert f"{script} = tf_metagrad.scripts:" in entry_points


def test_console_scripts_run_from_a_fresh_venv(wheel, tmp_path):
  venv = tmp_path / "venv"
  # No pip in the new venv (bootstrapping it is 5 s of CPU): the test's own
  # pip installs into it (`pip --python`).
  _run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)],  # pylint: disable=protected-access
       cwd=tmp_path)
  python = str(venv / "bin" / "python")
  _run([sys.executable, "-m", "pip", "--python", python, "install",
        "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
  # The pinned dependencies come from the test's environment (installing
  # TensorFlow again would take minutes); tf_metagrad itself only from the
  # wheel, since a path listed in a .pth file is not scanned for .pth files
  # of its own (the checkout's editable install).
  site = _run([python, "-c", "import sysconfig; "
               "print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
  with open(os.path.join(site.stdout.strip(), "deps.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  # TF_CPP_MIN_LOG_LEVEL unset: the scripts' own filter must keep the
  # noise out.
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}

  where = _run([python, "-c", "import importlib.util as u, tf_metagrad; "
                "print(tf_metagrad.__file__); "
                "print([m for m in ('trainers', 'export', 'benchmarks') "
                "if u.find_spec(m)])"], cwd=tmp_path, env=env)
  location, stray = where.stdout.splitlines()
  assert location.startswith(str(venv)), location
  assert stray == "[]"

  for script, flag in _SCRIPTS.items():
    # absl's --help exits with 1 after printing the program's flags.
    result = subprocess.run([str(venv / "bin" / script), "--help"],
                            cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert flag in result.stdout, (script, result.stdout[-2000:],
                                   result.stderr[-2000:])
    assert "Unable to register cu" not in result.stderr, script
    assert "oneDNN custom operations" not in result.stderr, script

  # A short run through the installed actor process and export.
  logdir = tmp_path / "run"
  result = _run([str(venv / "bin" / "tf-metagrad-train"), "--agent=impala",
                 "--env=catch", "--total_env_steps=200", "--unroll_length=5",
                 "--batch_size=4", "--envs_per_actor=4", "--num_actors=0",
                 "--num_actor_processes=1", "--eval_episodes=1",
                 "--config=mlp_hidden_sizes=8", "--config=head_hidden_sizes=8",
                 f"--logdir={logdir}"], cwd=tmp_path, env=env)
  assert "training completed" in result.stdout, result.stdout[-2000:]
  assert (logdir / "saved_model" / "saved_model.pb").exists()
  assert "[reverb/cc/" not in result.stderr, result.stderr[-2000:]
