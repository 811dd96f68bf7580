"""A trial function the executor tests map over: importable by module name (helpers.trials), so Ray
workers, local or in a `ray start` cluster with tests/ on PYTHONPATH, can load it."""
import json


def square_trial(*, out_path: str, value: int) -> dict:
    result = {"value": value, "square": value * value}
    with open(out_path, "w") as f:
        json.dump(result, f)
    return result
