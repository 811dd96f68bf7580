"""Budget search on the host: a MAC budget (graph-measured) and a latency budget (exported + harness)."""

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.budget import Budget


def test_parse_budget():
    assert Budget.parse("latency_ms=2.5") == {"latency_ms": 2.5}
    for bad in ("latency=2", "macs=-1", "size_kb", "macs=abc"):
        with pytest.raises(EdgepruneError, match="bad budget"):
            Budget.parse(bad)
