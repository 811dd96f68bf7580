"""Trial executor: in-process map keeps order and runs real trials; Ray only when it is installed."""
import importlib.util
import json

import pytest
from helpers.trials import square_trial

from edgeprune.errors import EdgepruneError
from edgeprune.executor import InProcessExecutor, get_executor


def test_inprocess_map_runs_every_trial_in_order(tmp_path):
    ex = get_executor()
    assert isinstance(ex, InProcessExecutor)
    jobs = [dict(out_path=str(tmp_path / f"t{i}.json"), value=v) for i, v in enumerate([3, 1, 2])]
    out = ex.map(square_trial, jobs)
    assert [r["square"] for r in out] == [9, 1, 4]
    assert json.loads((tmp_path / "t0.json").read_text()) == {"value": 3, "square": 9}


def test_trial_errors_propagate(tmp_path):
    with pytest.raises(TypeError):
        get_executor().map(square_trial, [dict(value=1)])


def test_unknown_kind_is_one_line_error():
    with pytest.raises(EdgepruneError, match="unknown executor 'dask'"):
        get_executor("dask")


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_missing_says_how_to_install():
    with pytest.raises(EdgepruneError, match=r"pip install 'edgeprune\[ray\]'"):
        get_executor("ray")
