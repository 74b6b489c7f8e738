"""The command-line programs (absl) and their plumbing; nothing else imports
them."""
