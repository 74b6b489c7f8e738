"""CPU time of every thread of this process by thread group, from /proc."""

import collections
import os
import re
import threading
import time


class ThreadCpu(threading.Thread):
  """Samples the CPU time of every thread of this process from /proc.

  Each sample maps a thread to its group and its CPU seconds so far. The
  group is the Python thread's name with its index dropped ("actor",
  "weights-publisher", "MainThread": the learner loop) or "unnamed" for the
  threads Python did not start: TF's op pools (the learner's step, and the
  ops of the actors' policy calls that TF hands to its pools), Reverb's and
  gRPC's, which TF 2.15 and Reverb leave with the process's name.
  """

  def __init__(self, every_s: float = 0.5):
    super().__init__(name="cpu-sampler", daemon=True)
    self.samples = []  # (monotonic time, {tid: (group, cpu seconds)})
    self._every_s = every_s
    self._done = threading.Event()

  @staticmethod
  def snapshot():
    names = {t.native_id: re.sub(r"-\d+$", "", t.name)
             for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
      try:
        with open(f"/proc/self/task/{tid}/stat") as f:
          stat = f.read()
      except OSError:  # The thread ended.
        continue
      comm = stat[stat.index("(") + 1:stat.rindex(")")]
      fields = stat[stat.rindex(")") + 2:].split()
      cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
      out[int(tid)] = (names.get(int(tid), f"unnamed ({comm})"), cpu)
    return out

  def run(self):
    while not self._done.wait(self._every_s):
      self.samples.append((time.monotonic(), self.snapshot()))

  def stop(self):
    self._done.set()
    self.join()

  def per_group(self, start_time: float, end_time: float):
    """(wall seconds, {group: CPU seconds}) between the first sample at or
    after `start_time` and the last at or before `end_time` (monotonic
    seconds), or None when fewer than two samples fall in that window.

    A thread counts up to the last sample it was alive in (actor threads
    end before the run's last samples), under the name Python gave it in
    any sample.
    """
    window = [s for s in self.samples if start_time <= s[0] <= end_time]
    if len(window) < 2:
      return None
    start, names, last = window[0][1], {}, {}
    for _, snapshot in window:
      for tid, (group, cpu) in snapshot.items():
        last[tid] = cpu
        if not group.startswith("unnamed"):
          names[tid] = group
        names.setdefault(tid, group)
    groups = collections.defaultdict(float)
    for tid, cpu in last.items():
      groups[names[tid]] += cpu - start.get(tid, (None, 0.0))[1]
    return window[-1][0] - window[0][0], dict(groups)
