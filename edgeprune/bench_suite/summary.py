"""Ratios against ptq-int8 and float32, and the project's targets checked on measured numbers."""
from __future__ import annotations

ACCURACY_LOSS_MAX_PT = 0.5
INSTR_VS_PTQ = 2.5
HOST_VS_PTQ = 2.5
VS_TFMOT50 = 2.0
SIZE_VS_FLOAT = 12.0
SIZE_TARGET_MODELS = ("lenet5", "resnet8")


def _ratio(num, den):
    return float(num) / float(den) if num and den else None


def add_ratios(variants: list[dict], devices: list[str]) -> None:
    """Annotate each variant row in place with ratios to `baseline` and `ptq-int8` (× smaller/faster)."""
    by = {v["variant"]: v for v in variants}
    base, ptq = by.get("baseline"), by.get("ptq-int8")
    for v in variants:
        r = {}
        if base:
            r["acc_delta_pt_vs_baseline"] = (v["test_accuracy"] - base["test_accuracy"]) * 100
            r["size_x_vs_baseline"] = _ratio(base["file_bytes"], v["file_bytes"])
            r["gzip_x_vs_baseline"] = _ratio(base["gzip_bytes"], v["gzip_bytes"])
        if ptq:
            r["size_x_vs_ptq"] = _ratio(ptq["file_bytes"], v["file_bytes"])
        for d in devices:
            t = v.get("timing", {}).get(d)
            if not t:
                continue
            for ref_name, ref in (("baseline", base), ("ptq", ptq)):
                rt = (ref or {}).get("timing", {}).get(d) or {}
                r[f"{d}_speedup_vs_{ref_name}"] = _ratio(rt.get("p50_ms"), t["p50_ms"])
                if "instructions_per_inference" in t:
                    r[f"{d}_instr_x_vs_{ref_name}"] = _ratio(rt.get("instructions_per_inference"),
                                                               t["instructions_per_inference"])
        v["ratios"] = r


def judged_edgeprune(variants: list[dict]) -> dict | None:
    """The most-pruned edgeprune level within the accuracy budget; else the most accurate level."""
    ours = [v for v in variants if v["variant"].startswith("edgeprune-")]
    if not ours:
        return None
    ok = [v for v in ours if -v["ratios"].get("acc_delta_pt_vs_baseline", -1e9) <= ACCURACY_LOSS_MAX_PT]
    if ok:
        return max(ok, key=lambda v: v.get("ratio", 0))
    return max(ours, key=lambda v: v["test_accuracy"])


def _target(name, measured, threshold, *, higher_is_better=True, unit="×"):
    if measured is None:
        return {"target": name, "measured": None, "threshold": threshold, "unit": unit, "met": None,
                "margin": None}
    eps = 1e-9  # accuracy deltas are sums of 1/n steps: 0.5 pt must count as within 0.5 pt
    met = measured >= threshold - eps if higher_is_better else measured <= threshold + eps
    margin = measured / threshold if higher_is_better and unit == "×" else threshold - measured
    return {"target": name, "measured": measured, "threshold": threshold, "unit": unit, "met": bool(met),
            "margin": margin}


def _timing(v, device, key):
    return ((v or {}).get("timing", {}).get(device) or {}).get(key)


def check_targets(model: str, variants: list[dict], host: str | None, emulated: str | None,
                  num_classes: int | None = None) -> tuple[str | None, list]:
    """(judged edgeprune variant, [target rows]); a target whose number was not measured has met None.

    When the float baseline is no better than twice chance (an under-trained smoke run), "no
    accuracy loss" means nothing, so the accuracy target is reported as not judged (met None).
    """
    ours = judged_edgeprune(variants)
    if ours is None:
        return None, []
    by = {v["variant"]: v for v in variants}
    base, ptq, t50 = by.get("baseline"), by.get("ptq-int8"), by.get("tfmot-50")
    loss = -ours["ratios"]["acc_delta_pt_vs_baseline"] if base else None
    acc_row = _target(f"accuracy loss vs float32 baseline ≤ {ACCURACY_LOSS_MAX_PT} pt", loss, ACCURACY_LOSS_MAX_PT,
                      higher_is_better=False, unit="pt")
    if base and num_classes and base["test_accuracy"] <= 2.0 / num_classes:
        acc_row.update(met=None, note=f"baseline accuracy {base['test_accuracy']:.1%} is near chance: not judged")
    rows = [acc_row]

    def ratio(ref, device, key):
        return _ratio(_timing(ref, device, key), _timing(ours, device, key)) if ref and device else None

    rows.append(_target(f"aarch64 instructions/inference ≥ {INSTR_VS_PTQ}× fewer than ptq-int8",
                        ratio(ptq, emulated, "instructions_per_inference"), INSTR_VS_PTQ))
    rows.append(_target(f"host latency p50 ≥ {HOST_VS_PTQ}× lower than ptq-int8", ratio(ptq, host, "p50_ms"),
                        HOST_VS_PTQ))
    rows.append(_target(f"host latency p50 ≥ {VS_TFMOT50}× lower than tfmot-50", ratio(t50, host, "p50_ms"),
                        VS_TFMOT50))
    rows.append(_target(f"aarch64 instructions/inference ≥ {VS_TFMOT50}× fewer than tfmot-50",
                        ratio(t50, emulated, "instructions_per_inference"), VS_TFMOT50))
    if model in SIZE_TARGET_MODELS:
        rows.append(_target(f"file ≥ {SIZE_VS_FLOAT:g}× smaller than float32",
                            _ratio(base["file_bytes"], ours["file_bytes"]) if base else None, SIZE_VS_FLOAT))
    return ours["variant"], rows
