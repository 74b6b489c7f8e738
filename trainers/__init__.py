"""Checkout launchers: `python -m trainers.train|actor|plot`.

The programs live in `tf_metagrad.programs`, which the wheel installs (with
the console scripts tf-metagrad-train, -actor and -plot); this folder is not
installed, so it cannot collide with other projects' `trainers` modules.
"""
