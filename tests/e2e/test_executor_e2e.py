"""Trial executor: in-process map keeps order and runs real trials; Ray only when it is installed."""
import importlib.util

import pytest
from helpers.trials import square_trial

from edgeprune.executor import get_executor


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (optional extra)")
def test_ray_local_runs_trials(tmp_path):
    ex = get_executor("ray")
    jobs = [dict(out_path=str(tmp_path / f"t{i}.json"), value=v) for i, v in enumerate([4, 5])]
    assert [r["square"] for r in ex.map(square_trial, jobs)] == [16, 25]
    assert (tmp_path / "t1.json").exists()
