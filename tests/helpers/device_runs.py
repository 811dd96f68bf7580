"""A recorded run's metrics.json with four files measured on the emulated Pi 4 and the host: the
device-metric tests and the deploy test read the same run."""

# An emulated A72 (Pi 4): float32 needs fewer instructions than int8, but int8's multiply-accumulates
# issue on two pipes, so its estimated board time is lower (as on a real Pi 4); the emulator's own
# wall time is yet another order and decides nothing. The host times the files for real.
FILES = {  # name: (quant, test accuracy, bytes, emulator ms, qemu instructions, est. board ms, host p50 ms)
    "finetuned-none.tflite": ("none", 0.905, 40_000, 3.0, 1_300_000, 0.90, 0.30),
    "finetuned-int8.tflite": ("int8", 0.903, 12_000, 4.0, 1_950_000, 0.50, 0.10),
    "baseline-none.tflite": ("none", 0.910, 400_000, 30.0, 9_000_000, 5.00, 1.50),
    "pruned-none.tflite": ("none", 0.900, 30_000, 2.0, 1_000_000, 0.95, 0.25),  # fewest instructions
}


def recorded_metrics() -> dict:
    exports, benchmarks = [], []
    for name, (quant, acc, size, emulator_ms, instr, board_ms, host_ms) in FILES.items():
        stage = name.split("-")[0]
        path = f"exports/{name}"
        exports.append({"stage": stage, "format": "tflite", "quant": quant, "path": path, "file_bytes": size,
                        "export_seconds": 1.0, "accuracy": acc, "samples": 1000})
        benchmarks.append({"export": path, "stage": stage, "format": "tflite", "quant": quant,
                           "device": "qemu-aarch64", "emulated": True, "latency_ms": {}, "arch": "aarch64",
                           "stands_for": "Raspberry Pi 4 Model B (emulated Cortex-A72)",
                           "emulator_ms": {"p50": emulator_ms}, "instructions_per_inference": instr,
                           "board_time_ms": board_ms, "board_time": {"board": "Raspberry Pi 4 Model B"},
                           "accuracy": acc, "raw": f"bench/{name}@qemu-aarch64.json"})
        benchmarks.append({"export": path, "stage": stage, "format": "tflite", "quant": quant, "device": "host",
                           "arch": "native", "stands_for": "This machine, native", "emulated": False, "latency_ms": {"p50": host_ms, "p90": host_ms, "p99": host_ms,
                                                             "mean": host_ms},
                           "accuracy": acc, "raw": f"bench/{name}@host.json"})
    stage = {"model_path": "m.keras", "file_bytes": 1, "params": 1, "macs": 1, "val_accuracy": 0.9,
             "test_accuracy": 0.9, "layers": []}
    return {"schema_version": 1, "run": {"name": "r"}, "dataset": {"name": "d", "test": 1000},
            "stages": {"baseline": stage, "finetuned": stage, "pruned": stage}, "steps": [], "exports": exports, "benchmarks": benchmarks}
