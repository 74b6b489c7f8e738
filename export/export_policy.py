"""`python -m export.export_policy` in a checkout; see `tf_metagrad.scripts`."""

from tf_metagrad import scripts

if __name__ == "__main__":
  scripts.export()
