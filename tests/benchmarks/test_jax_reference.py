"""benchmarks.jax_reference without JAX: the case file the TF side writes
and the worker's numpy check; with $TF_METAGRAD_JAX_PYTHON set, also the
worker itself on a tiny case (skipped otherwise)."""

import os
import re

import numpy as np
import pytest

from benchmarks import common
from benchmarks import jax_reference_case as case_lib
from benchmarks import jax_reference_worker as worker

_AGENTS = ("stac", "impala")
_T, _B = 3, 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(learners, batch, path, case, states before the exported step)."""
  shape, dtype, num_actions, _ = common.NETWORKS["mlp"]
  batch, warm = (common.random_trajectory(np.random.default_rng(seed), _T,
                                          _B, shape, dtype, num_actions)
                 for seed in (0, 1))
  learners = {a: common.build_learner(a, "mlp", False, 0, tiny=True,
                                      head_hidden_sizes=()) for a in _AGENTS}
  before = {a: [v.numpy() for v in l.network.trainable_variables]
            for a, l in learners.items()}
  path = str(tmp_path_factory.mktemp("case") / "case.npz")
  case_lib.export_case(learners, batch, warm, 1, path)
  return learners, batch, path, worker.load_case(path), before


def test_case_round_trips_batch_config_and_states(exported):
  learners, batch, _, case, before = exported
  assert list(worker.agents_in(case)) == list(_AGENTS)
  for name, value in worker.batch_of(case).items():
    np.testing.assert_array_equal(value, getattr(batch, name).numpy())
  assert set(worker.batch_of(case)) == {
      "observation", "action", "reward", "discount", "behaviour_log_prob"}
  hp = worker.hyperparameters(case)
  assert hp["gamma"] == pytest.approx(0.995)
  assert hp["max_grad_norm"] == 40.0 and hp["g_kl"] == 1.0
  names = [str(n) for n in case["param_names"]]
  assert names == [v.name for v in
                   learners["stac"].network.trainable_variables]
  assert worker.network_kind(names) == "mlp"
  for agent, learner in learners.items():
    old = worker.agent_state(case, agent, "old")
    new = worker.agent_state(case, agent, "new")
    # One warm-up step happened before the exported state: it is not the
    # initial one, and the exported step moved every parameter array.
    assert any(not np.array_equal(a, b) for a, b in zip(before[agent], old[0]))
    assert all(not np.array_equal(a, b) for a, b in zip(old[0], new[0]))
    for now, exported_new in zip(learner.network.trainable_variables, new[0]):
      np.testing.assert_array_equal(now.numpy(), exported_new)
    assert len(old[1]) == len(old[0])
    assert f"{agent}/metrics/inner_loss" in case
  _, _, meta, meta_opt = worker.agent_state(case, "stac", "old")
  assert sorted(meta) == ["alpha", "g_e", "g_p", "g_v", "gamma", "lambda_"]
  assert all(int(c) == 1 for c, _, _ in meta_opt.values())
  _, _, _, new_opt = worker.agent_state(case, "stac", "new")
  assert all(int(c) == 2 for c, _, _ in new_opt.values())
  assert worker.agent_state(case, "impala", "old")[2] == {}


def test_compare_passes_the_reference_and_fails_a_different_step(exported):
  case = exported[3]
  old = worker.agent_state(case, "stac", "old")
  ref = worker.agent_state(case, "stac", "new")
  errors = worker.compare(old, ref, ref, ulps=worker.ULPS)
  assert max(errors.values()) == 0.0
  # A parameter step 1% longer than TF's, as a wrong loss weight gives.
  params = [o + 1.01 * (n - o) for o, n in zip(old[0], ref[0])]
  errors = worker.compare(old, ref, (params,) + ref[1:], ulps=worker.ULPS)
  assert errors["params"] == pytest.approx(0.01, rel=0.05)
  assert errors["params"] > worker.DEFAULT_TOLERANCE["mlp"]
  meta_opt = {n: (c + 1, mu, nu) for n, (c, mu, nu) in ref[3].items()}
  errors = worker.compare(old, ref, ref[:3] + (meta_opt,))
  assert errors["adam_count"] == 1.0


def test_delta_error_scales_by_the_change_and_forgives_two_ulps():
  old = np.array([1.0, 2.0], np.float32)
  ref = old + np.float32(1e-3)
  assert worker.delta_error(old, ref, ref + np.float32(1e-5)) == (
      pytest.approx(1e-2, rel=0.05))
  one_ulp = np.nextafter(ref, np.float32(np.inf))
  assert worker.delta_error(old, ref, one_ulp) > 0
  assert worker.delta_error(old, ref, one_ulp, ulps=2) == 0.0


def test_unsupported_configs_are_refused():
  learner = common.build_learner("impala", "mlp", False, 0, tiny=True)
  with pytest.raises(ValueError, match="head_hidden_sizes"):
    case_lib.check_config(learner.config)


def test_missing_jax_python_is_one_clear_error(monkeypatch):
  monkeypatch.delenv(case_lib.JAX_PYTHON_ENV, raising=False)
  with pytest.raises(ValueError, match="TF_METAGRAD_JAX_PYTHON"):
    case_lib.jax_python(None)
  monkeypatch.setenv(case_lib.JAX_PYTHON_ENV, "/some/python")
  assert case_lib.jax_python(None) == "/some/python"
  assert case_lib.jax_python("/other") == "/other"


def test_summary_line_is_machine_readable():
  line = case_lib.summary_line(
      "mlp", ["stac", "impala"], {"stac": 12.0, "impala": 6.0},
      {"stac": 4.0, "impala": 1.5}, {"stac": 5.0, "impala": 1.0}, 1e-5,
      "0.10.2")
  assert re.fullmatch(
      r"network=mlp agent=stac tf_step_ms=12\.000 jax_step_ms=4\.000 "
      r"tf_over_jax=3\.000 impala_tf_ms=6\.000 impala_jax_ms=1\.500 "
      r"impala_tf_over_jax=4\.000 jax_stac_over_impala=2\.667 "
      r"jax_compile_s=5\.00,1\.00 max_rel_diff=1e-05 jax_version=0\.10\.2",
      line), line


@pytest.mark.skipif(not os.environ.get(case_lib.JAX_PYTHON_ENV),
                    reason=f"${case_lib.JAX_PYTHON_ENV} (a python with jax) "
                    "is not set")
def test_worker_reproduces_the_tf_step(exported):
  path = exported[2]
  result = case_lib.run_worker(os.environ[case_lib.JAX_PYTHON_ENV], path,
                               list(_AGENTS), repeats=1, warmup=1,
                               timeout_s=300)
  for agent in _AGENTS:
    info = result["agents"][agent]
    assert info["max_rel_diff_beyond_rounding"] < 1e-4, info["errors"]
    assert info["median_ms"] > 0
