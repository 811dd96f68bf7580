"""From the trials' results to a group's variants (one per shipped file), their ratios and the targets.

Ratios compare files on the same device: × below PTQ int8 in the device's metric (emulated boards:
the estimated board time; on the host, p50 latency), × smaller file than float32, and accuracy
loss in points against the float32 reference (test accuracy of the exported file, full test split).
"""
from __future__ import annotations

from edgeprune.errors import EdgepruneError
from edgeprune.device_metric import cost, row_metric

EPS = 1e-9  # accuracy deltas are sums of 1/n steps: 0.2 pt must count as within 0.2 pt


def files_of(result: dict) -> dict[str, dict]:
    """One entry per exported file of a run, with its per-device measurements merged in."""
    out: dict[str, dict] = {}
    for r in result["rows"]:
        f = out.setdefault(r["artifact"], {
            "artifact": r["artifact"], "stage": r["stage"], "format": r["format"], "quant": r["quant"],
            "file_bytes": r["file_bytes"], "params": r["params"], "macs": r["macs"],
            "test_accuracy": r["test_accuracy"], "test_samples": r.get("test_samples"), "devices": {}})
        if r.get("device"):
            lat = r.get("latency_ms") or {}
            f["devices"][r["device"]] = {"instructions": r.get("instructions_per_inference"),
                                         "board_ms": r.get("board_time_ms"),
                                         "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"),
                                         "emulated": bool(r.get("emulated"))}
    return out


def shipped(result: dict) -> dict[str, str]:
    """{device: artifact} the run's report recommends shipping ("which file to ship")."""
    return {rec["device"]: result["rows"][rec["row"]]["artifact"]
            for rec in result["recommendations"] if rec["goal"] == "recommended"}


def _variant(name: str, kind: str, result: dict, f: dict, **extra) -> dict:
    return {"variant": name, "kind": kind, "recipe": result["recipe"]["name"], "run_dir": result["run_dir"],
            **f, **extra}


def reference_variants(result: dict) -> list[dict]:
    """float32 and PTQ int8 from the reference run: exactly one float and one int8 .tflite file."""
    files = [f for f in files_of(result).values() if f["format"] == "tflite"]
    out = []
    for name, quant in (("float32", "none"), ("ptq-int8", "int8")):
        match = [f for f in files if f["quant"] == quant]
        if len(match) != 1:
            raise EdgepruneError(f"reference run {result['run_dir']} exported {len(match)} {quant} .tflite files",
                                 "the reference recipe exports one float32 and one PTQ int8 file")
        out.append(_variant(name, "reference", result, match[0]))
    return out


def tfmot_variant(result: dict) -> dict:
    [f] = [f for f in files_of(result).values() if f["format"] == "tflite"]
    return _variant(f"tfmot-{round(result['sparsity'] * 100)}", "tfmot", result, f,
                    description=result.get("description"), weight_sparsity=result.get("weight_sparsity"))


def edgeprune_variants(result: dict, devices: list[str]) -> list[dict]:
    """The files the run would ship, one variant per file, naming the devices it is shipped for."""
    files, ships = files_of(result), shipped(result)
    out: dict[str, dict] = {}
    for device in devices:
        artifact = ships.get(device)
        if artifact is None:
            continue
        if artifact not in out:
            out[artifact] = _variant(f"{result['recipe']['name']} ({_short(artifact)})", "edgeprune", result,
                                     files[artifact], ships_on=[])
        out[artifact]["ships_on"].append(device)
    return list(out.values())


def _short(artifact: str) -> str:
    return artifact.rsplit("/", 1)[-1]


def add_ratios(variants: list[dict], devices: list[str]) -> None:
    """Annotate each variant in place: loss vs float32, × smaller than float32, per device × fewer than PTQ int8."""
    by = {v["variant"]: v for v in variants}
    base, ptq = by["float32"], by["ptq-int8"]
    for v in variants:
        r = {"loss_pt": (base["test_accuracy"] - v["test_accuracy"]) * 100 + 0.0,
             "size_x_vs_float": base["file_bytes"] / v["file_bytes"]}
        for d in devices:
            mine, theirs = v["devices"].get(d), ptq["devices"].get(d)
            if not mine or not theirs:
                continue
            metric = row_metric(_as_row(mine))
            a, b = device_cost(mine, metric), device_cost(theirs, metric)
            if a and b:
                r[f"{d}_x_vs_ptq"] = b / a
                r[f"{d}_x_vs_ptq_by"] = metric.label
        v["ratios"] = r


def _as_row(cell: dict) -> dict:
    row = {"emulated": cell.get("emulated"), "instructions_per_inference": cell.get("instructions"),
           "latency_ms": {"p50": cell.get("p50_ms")}}
    if cell.get("board_ms") is not None:
        row["board_time_ms"] = cell["board_ms"]
    return row


def device_cost(cell: dict, metric) -> float | None:
    """A file's cost on a device by the device's one metric (:mod:`edgeprune.device_metric`)."""
    return cost(_as_row(cell), metric)


def _target(name: str, measured, threshold, *, lower_is_better=False, unit="×") -> dict:
    if measured is None:
        return {"target": name, "measured": None, "threshold": threshold, "unit": unit, "met": None, "margin": None}
    if lower_is_better:
        met, margin = measured <= threshold + EPS, threshold - measured
    else:
        met, margin = measured >= threshold - EPS, measured / threshold
    return {"target": name, "measured": measured, "threshold": threshold, "unit": unit, "met": bool(met),
            "margin": margin}


def check_targets(variants: list[dict], targets, baseline_accuracy: float | None = None) -> list[dict]:
    """Target rows for each edgeprune file shipped on the target device, plus the trained baseline's
    test accuracy (`baseline_accuracy`: the shared train step's model, before any variant's epochs)."""
    rows = []
    if targets.baseline_accuracy is not None:
        acc = baseline_accuracy
        row = _target(f"trained baseline test accuracy ≥ {targets.baseline_accuracy * 100:g}%",
                      None if acc is None else acc * 100, targets.baseline_accuracy * 100, unit="%")
        if acc is not None:
            row["margin"] = (acc - targets.baseline_accuracy) * 100
        rows.append(row | {"judged": "baseline (train step)"})
    devices = [targets.device, *targets.also_devices]
    judged = [v for v in variants if v["kind"] == "edgeprune" and set(devices) & set(v.get("ships_on", []))]
    if not judged:
        rows.append({"target": f"an edgeprune file shipped for {targets.device}", "measured": None, "met": False,
                     "margin": None, "unit": "", "threshold": None, "judged": None,
                     "note": f"no edgeprune run measured {targets.device}"})
    for v in judged:
        r = v["ratios"]
        rows.append(_target(f"accuracy loss vs float32 ≤ {targets.max_loss_pt:g} pt", r["loss_pt"],
                            targets.max_loss_pt, lower_is_better=True, unit="pt") | {"judged": v["variant"]})
        for device in (d for d in devices if d in v.get("ships_on", [])):
            if targets.x_vs_ptq is not None:
                what = r.get(f"{device}_x_vs_ptq_by", "estimated board time")
                rows.append(_target(f"{device}: ≥ {targets.x_vs_ptq:g}× lower {what} than PTQ int8",
                                    r.get(f"{device}_x_vs_ptq"), targets.x_vs_ptq) | {"judged": v["variant"]})
        if targets.size_x_vs_float is not None:
            rows.append(_target(f"file ≥ {targets.size_x_vs_float:g}× smaller than float32", r["size_x_vs_float"],
                                targets.size_x_vs_float) | {"judged": v["variant"]})
    return rows + allocation_rows(variants, targets.allocated_for)


def allocation_rows(variants: list[dict], allocated_for: dict[str, str]) -> list[dict]:
    """Per device of `allocated_for`: the file its own recipe ships there against each other listed recipe's
    file for that device, in the device's metric (measured × below the rival's cost; ≥ 1 is met)."""
    rows = []
    shipped = {(v["recipe"], d): v for v in variants if v["kind"] == "edgeprune" for d in v.get("ships_on", [])}
    for device, mine in allocated_for.items():
        for other_device, theirs in allocated_for.items():
            if theirs == mine:
                continue
            a, b = shipped.get((mine, device)), shipped.get((theirs, device))
            cells = (a or {}).get("devices", {}).get(device), (b or {}).get("devices", {}).get(device)
            measured = None
            if all(cells):
                metric = row_metric(_as_row(cells[0]))
                cost_a, cost_b = device_cost(cells[0], metric), device_cost(cells[1], metric)
                measured = cost_b / cost_a if cost_a and cost_b else None
            rows.append(_target(f"{device}: the file allocated for it costs no more there than the one allocated "
                                f"for {other_device} (× below it)", measured, 1.0)
                        | {"judged": f"{mine} vs {theirs}"})
    return rows
