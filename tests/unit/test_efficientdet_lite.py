"""EfficientDet-Lite builder (edgeprune.bench_suite.efficientdet_lite): structure, parameters, export."""

import pytest

from edgeprune.bench_suite import efficientdet_lite as edl


def test_round_filters_and_bifpn_nodes_follow_automl():
    # efficientnet_model.round_filters: width 1.4 (lite4) turns the 32/16/24/40 widths into 48/24/32/56
    assert [edl._round_filters(c, 1.4) for c in (32, 16, 24, 40, 320)] == [48, 24, 32, 56, 448]
    assert [edl._round_filters(c, 1.1) for c in (32, 40, 112, 320)] == [32, 48, 120, 352]
    # fpn_configs.bifpn_config(3, 7): the documented P3-P7 node list
    assert edl._bifpn_nodes() == [
        (6, [3, 4]), (5, [2, 5]), (4, [1, 6]), (3, [0, 7]),
        (4, [1, 7, 8]), (5, [2, 6, 9]), (6, [3, 5, 10]), (7, [4, 11]),
    ]
    with pytest.raises(ValueError):
        edl.build_efficientdet_lite(5)
