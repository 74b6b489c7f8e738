"""The wheel installs only the tf_metagrad namespace, and its console scripts
work from a fresh virtual environment outside the checkout: README's walk
from a user's own environment module to a trained, exported, evaluated and
plotted policy, in the user's folder and without PYTHONPATH."""

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


def _readme_module():
  """The user's environment module of README's walk ("Your own
  environments"), as its `cat > my_envs/__init__.py` writes it."""
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    text = f.read()
  match = re.search(r"^cat > my_envs/__init__\.py <<'EOF'\n(.*?)^EOF$", text,
                    re.S | re.M)
  assert match, "README's walk lost its my_envs/__init__.py"
  return match.group(1)


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
  for module in ("tf_metagrad/py.typed", "tf_metagrad/programs/train.py",
                 "tf_metagrad/programs/export.py",
                 "tf_metagrad/programs/scripts.py",
                 "tf_metagrad/serving/saved_policy.py",
                 "tf_metagrad/serving/playback.py"):
    assert module in names
  for script in _SCRIPTS:
    assert f"{script} = tf_metagrad.programs.scripts:" in entry_points


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

  version = re.match(r"tf_metagrad-([^-]+)-", wheel.name).group(1)
  for script, flag in _SCRIPTS.items():
    # absl's --help exits with 1 after printing the program's flags.
    result = subprocess.run([str(venv / "bin" / script), "--help"],
                            cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert flag in result.stdout, (script, result.stdout[-2000:],
                                   result.stderr[-2000:])
    assert "Unable to register cu" not in result.stderr, script
    assert "oneDNN custom operations" not in result.stderr, script
    # An installed wheel carries no git commit.
    result = _run([str(venv / "bin" / script), "--version"], cwd=tmp_path,
                  env=env)
    assert result.stdout == (f"tf_metagrad {version} (git commit unknown: "
                             f"not run from a git checkout)\n"), result.stdout

  # README's walk, in the user's folder: its own environment module,
  # imported by the trainer, its actor process, the export, the evaluation
  # and the plot. Tiny settings: a learner step or two.
  user = tmp_path / "user"
  (user / "my_envs").mkdir(parents=True)
  (user / "my_envs" / "__init__.py").write_text(_readme_module())
  bin_dir = venv / "bin"
  env_name = "gym:my_envs:MyCorridor-v0"
  result = _run([str(bin_dir / "tf-metagrad-train"), "--agent=impala",
                 f"--env={env_name}", "--total_env_steps=40",
                 "--unroll_length=5", "--batch_size=4", "--envs_per_actor=4",
                 "--num_actors=0", "--num_actor_processes=1",
                 "--eval_episodes=1", "--config=mlp_hidden_sizes=8",
                 "--config=head_hidden_sizes=8", "--logdir=runs/corridor"],
                cwd=user, env=env)
  assert "training completed" in result.stdout, result.stdout[-2000:]
  assert (user / "runs" / "corridor" / "saved_model" /
          "saved_model.pb").exists()
  assert "[reverb/cc/" not in result.stderr, result.stderr[-2000:]
  _run([str(bin_dir / "tf-metagrad-export"), "--logdir=runs/corridor",
        "--output=corridor_policy"], cwd=user, env=env)
  result = _run([str(bin_dir / "tf-metagrad-evaluate"),
                 "--saved_model=corridor_policy", "--episodes=2"],
                cwd=user, env=env)
  assert re.fullmatch(r"mean_return=\S+ std_return=\S+ episodes=2\n",
                      result.stdout), result.stdout
  _run([str(bin_dir / "tf-metagrad-plot"), "runs/corridor",
        "--output=corridor.png"], cwd=user, env=env)
  assert (user / "corridor.png").stat().st_size > 0
