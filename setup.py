"""Installs tf_metagrad; all metadata and pins live in setup.cfg."""
import sys

if not (3, 9) <= sys.version_info[:2] <= (3, 11):
  sys.exit(
      f"tf_metagrad needs CPython 3.9-3.11 because dm-reverb 0.14 ships wheels "
      f"only for those versions; this is Python "
      f"{sys.version_info[0]}.{sys.version_info[1]} ({sys.executable}), so "
      f"install Python 3.11 and run again with PYTHON=python3.11.")

import setuptools  # pylint: disable=g-import-not-at-top

setuptools.setup()
