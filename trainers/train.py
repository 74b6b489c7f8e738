"""`python -m trainers.train` in a checkout (see `tf_metagrad.programs.scripts`)."""

from tf_metagrad.programs import scripts

if __name__ == "__main__":
  scripts.train()
