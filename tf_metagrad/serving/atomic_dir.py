"""Replacing a directory with a new one that is never seen half written,
through `tf.io.gfile` (local paths and URLs alike).

`replace(path, write, marker)` has `write` fill `PATH.tmp-<pid>`, then puts
that directory at PATH.

On a local filesystem the replacement is atomic: the new directory is
renamed to PATH; an existing PATH is first renamed to `PATH.old-<pid>` and
deleted only once the new one is in place, so PATH never holds a partial
directory and a failed write leaves the old one intact. A `PATH.tmp-<pid>`
whose process no longer runs (a write that was killed) is deleted, with a
warning, by the next replacement of PATH. (The pid is looked up on the
machine that writes: replacements of one PATH from several machines at once
are not supported.)

A PATH that is a URL (gs://, ram://, file://; see `runs.is_local`) cannot
be replaced by a directory rename: object stores rename a directory object
by object, and ram:// moves only the directory's own entry. The new
directory is still written to `PATH.tmp-<pid>` first, so a failed write
leaves the old one intact; then the old `PATH/<marker>` is deleted, the rest
of PATH after it, the new files are copied in and the new `<marker>` last
(one file, which object stores show only once it is complete). The marker
file thus says that PATH is complete, and PATH never holds a mix of two
directories that has one. From the deletion of the old marker to the copy
of the new one, PATH holds none; a reader then, or after the writing
process died in between, finds no marker, and the next replacement deletes
the `PATH.tmp-<pid>` left behind.

For an exported policy the marker is `saved_model.pb`: without it
`tf.saved_model.load` fails with "SavedModel file does not exist", and a
trainer asked to resume the finished run exports again.
"""

import glob
import os
from typing import Callable, Iterator, Tuple

from absl import logging
import tensorflow as tf

from tf_metagrad import runs


def _remove(path: str) -> None:
  """Deletes directory `path` and what it holds, if it exists."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    # Also raised by ram:// once everything is deleted: its listing of a
    # directory holds the siblings whose names extend it (saved_model.tmp-1
    # of saved_model), as if they were entries inside.
    if tf.io.gfile.glob(glob.escape(path)):
      raise


def _entries(root: str, relative: str = "") -> Iterator[Tuple[str, bool]]:
  """(path relative to `root`, is a directory) of everything under `root`,
  each directory before what it holds.

  Found with glob, which matches whole names, rather than listdir, which
  on ram:// also reports siblings whose names extend the directory's.
  """
  pattern = os.path.join(glob.escape(os.path.join(root, relative)), "*")
  for path in sorted(tf.io.gfile.glob(pattern)):
    name = os.path.join(relative, os.path.basename(path.rstrip("/")))
    is_dir = tf.io.gfile.isdir(path)
    yield name, is_dir
    if is_dir:
      yield from _entries(root, name)


def _replace_by_copy(source: str, path: str, marker: str) -> None:
  """Replaces `path` by a copy of `source`, for file systems without an
  atomic directory rename (see the module docstring)."""
  try:
    tf.io.gfile.remove(os.path.join(path, marker))
  except tf.errors.NotFoundError:
    pass
  _remove(path)
  entries = list(_entries(source))
  tf.io.gfile.makedirs(path)
  for name, is_dir in entries:
    if is_dir:
      tf.io.gfile.makedirs(os.path.join(path, name))
  for name, is_dir in entries:
    if not is_dir and name != marker:
      tf.io.gfile.copy(os.path.join(source, name), os.path.join(path, name),
                       overwrite=True)
  tf.io.gfile.copy(os.path.join(source, marker), os.path.join(path, marker),
                   overwrite=True)


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's process.
    return True
  return True


def _remove_stale_temporaries(path: str) -> None:
  """Deletes `path.tmp-<pid>` directories of writers no longer running.

  A live pid may be a concurrent replacement of the same path, so its
  directory is left alone.
  """
  parent, name = os.path.split(path)
  prefix = name + ".tmp-"
  for entry in sorted(tf.io.gfile.listdir(parent or ".")):
    entry = entry.rstrip("/")
    pid = entry[len(prefix):]
    if (not entry.startswith(prefix) or not pid.isdigit() or
        int(pid) == os.getpid() or _process_alive(int(pid))):
      continue
    stale = os.path.join(parent, entry)
    logging.warning("Deleting %s: a partial export left by process %s, "
                    "which is no longer running.", stale, pid)
    _remove(stale)


def replace(path: str, write: Callable[[str], None], marker: str) -> None:
  """Writes a new directory with `write` and puts it at `path`, replacing
  what was there (atomically for a local `path`; see the module docstring).

  Args:
    path: the directory to (re)write.
    write: fills the (new, absent) directory it is given.
    marker: the file of the new directory that says it is complete; copied
      last where `path` is a URL.

  Raises:
    Whatever `write` or the file system raises; `path` then holds the old
    directory (or, for a URL, one without `marker`).
  """
  path = path.rstrip("/")
  parent = os.path.dirname(path)
  if parent:
    tf.io.gfile.makedirs(parent)
  tmp = f"{path}.tmp-{os.getpid()}"
  old = f"{path}.old-{os.getpid()}"
  _remove(tmp)  # Left behind by a killed write of an earlier process.
  _remove_stale_temporaries(path)
  try:
    write(tmp)
  except BaseException:
    _remove(tmp)
    raise
  if not runs.is_local(path):
    try:
      _replace_by_copy(tmp, path, marker)
    finally:
      _remove(tmp)
    return
  if not tf.io.gfile.exists(path):
    tf.io.gfile.rename(tmp, path)
    return
  _remove(old)
  tf.io.gfile.rename(path, old)
  try:
    tf.io.gfile.rename(tmp, path)
  except BaseException:
    tf.io.gfile.rename(old, path)
    _remove(tmp)
    raise
  _remove(old)
