"""Ray executor against a real cluster started with `ray start --head`, and an address where none runs."""
import importlib.util
import socket
import time

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (optional extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ray
def test_refused_address_is_one_line_naming_it_and_what_to_try():
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    t = time.monotonic()
    with pytest.raises(EdgepruneError) as e:
        get_executor("ray", address=address)
    assert time.monotonic() - t < 30  # Ray alone would retry for minutes; the exact time is not the point
    text = str(e.value)
    assert address in text and "ray start --head" in text and "auto" in text and "\n" not in text
