"""Checkout launchers: `python -m export.export_policy|evaluate`.

The programs live in `tf_metagrad.programs`, which the wheel installs (with
the console scripts tf-metagrad-export and -evaluate); this folder is not
installed, so it cannot collide with other projects' `export` modules.
"""
