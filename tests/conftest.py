import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgeprune  # noqa: E402,F401  (quiets TensorFlow before anything imports it)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def board_check_work(tmp_path_factory):
    """A board-check work folder holding EfficientDet-Lite0 exported float32 and int8 (about 2 minutes,
    once per session): the builder's export test and the emulated board check share it."""
    from edgeprune.bench_suite.board_check import export_model

    work = tmp_path_factory.mktemp("board-check")
    export_model("efficientdet-lite0", work)
    return work
