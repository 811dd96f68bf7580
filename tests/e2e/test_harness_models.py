"""The shared harness models (tests/helpers/harness_models.py) are what the harness tests assume."""
import numpy as np
import pytest
from helpers.harness_models import harness_models


def test_fixture_models_are_trained_and_int8_is_really_quantized():
    from ai_edge_litert.interpreter import Interpreter

    m = harness_models()
    assert np.mean(m.keras_predictions == m.y_eval) > 0.6  # trained, not chance (10 classes)
    interp = Interpreter(model_path=str(m.int8_tflite))
    (inp,) = interp.get_input_details()
    assert inp["dtype"] == np.int8 and inp["quantization"][0] > 0
    assert interp.get_output_details()[0]["dtype"] == np.int8
    assert m.int8_tflite.stat().st_size < m.float_tflite.stat().st_size


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
