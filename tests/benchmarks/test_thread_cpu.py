"""benchmarks.thread_cpu's split of CPU by thread group, on made-up
samples."""

from benchmarks import thread_cpu


def test_threads_that_end_early_keep_their_cpu_and_name():
  sampler = thread_cpu.ThreadCpu()
  sampler.samples = [
      (0.0, {1: ("MainThread", 1.0), 2: ("actor", 5.0)}),
      (1.0, {1: ("MainThread", 2.0), 2: ("actor", 6.0)}),
      # The actor thread has ended; a pool thread appears after the cut.
      (2.0, {1: ("MainThread", 2.5), 2: ("actor", 7.5),
             3: ("unnamed (python)", 0.25)}),
      (4.0, {1: ("MainThread", 4.0), 3: ("unnamed (python)", 1.0)}),
      # A thread whose name Python knew earlier is remembered by it, even
      # when only /proc's name is left.
      (5.0, {1: ("unnamed (python)", 4.5), 3: ("unnamed (python)", 1.5)}),
  ]
  wall, groups = sampler.per_group(1.0, 5.0)
  assert wall == 4.0
  assert groups == {"MainThread": 2.5, "actor": 1.5,
                    "unnamed (python)": 1.5}


def test_window_is_the_samples_between_the_times_and_needs_two():
  sampler = thread_cpu.ThreadCpu()
  sampler.samples = [
      (float(t), {1: ("MainThread", float(t)), 2: ("actor", 2.0 * t)})
      for t in range(6)]
  wall, groups = sampler.per_group(0.5, 4.5)  # Samples 1 to 4.
  assert wall == 3.0
  assert groups == {"MainThread": 3.0, "actor": 6.0}
  assert sampler.per_group(4.5, 5.5) is None  # Sample 5 alone.
  assert sampler.per_group(2.1, 2.9) is None
