"""The package version and the git commit of its source tree.

Imports no TensorFlow: the programs' `--version` (`programs.cli.run`) prints
this before they import anything else, and `run_spec.json` records it
(`runs.provenance`).
"""

import importlib.metadata
import os
import subprocess
from typing import Dict, Optional


def provenance() -> Dict[str, Optional[str]]:
  """The installed package version and the git commit of the source tree
  this module was imported from; None for what cannot be told."""
  try:
    version = importlib.metadata.version("tf_metagrad")
  except importlib.metadata.PackageNotFoundError:
    version = None
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  commit = None
  try:
    # Only the checkout whose top level holds this package: an installed
    # copy inside some other repository must not report that one's commit.
    top = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"],
                         cwd=root, capture_output=True, text=True,
                         timeout=10, check=False)
    lines = top.stdout.split()
    if (top.returncode == 0 and len(lines) == 2 and
        os.path.realpath(lines[0]) == os.path.realpath(root)):
      commit = lines[1]
  except (OSError, subprocess.SubprocessError):
    pass
  return {"package_version": version, "git_commit": commit}


def describe() -> str:
  """The `--version` line: "tf_metagrad 0.1.0 (git commit <sha>)", or
  "(git commit unknown: not run from a git checkout)" for an installed
  wheel, whose files carry no commit."""
  found = provenance()
  # A checkout that was never pip-installed has no package metadata.
  version = found["package_version"] or "(version unknown: not installed)"
  commit = (f"git commit {found['git_commit']}" if found["git_commit"] else
            "git commit unknown: not run from a git checkout")
  return f"tf_metagrad {version} ({commit})"
