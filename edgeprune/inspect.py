"""`edgeprune inspect`: parameters, MACs, per-layer table, file size, dependency groups."""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.modelio import read_model
from edgeprune.pruning import analyse, model_stats
from edgeprune.tables import console, rich_table


def inspect_data(path: Path, show_groups: bool) -> dict:
    loaded = read_model(path)
    stats = model_stats(loaded.model)
    out = {"path": str(path), "file_bytes": loaded.file_bytes, "keras": loaded.flavor, "format": loaded.format,
           "params": stats["params"], "macs": stats["macs"], "layers": stats["layers"]}
    if show_groups:
        out["groups"] = [g.to_dict() for g in analyse(loaded.model).groups]
    return out


def inspect_model(path: Path, *, show_groups: bool = False, as_json: bool = False) -> dict:
    data = inspect_data(Path(path), show_groups)
    if as_json:
        print(json.dumps(data, indent=1))
        return data
    out = console()
    out.print(f"[bold]{path}[/bold]: {data['file_bytes']:,} bytes ({data['keras']} {data['format']}), "
              f"{data['params']:,} params, {data['macs']:,} MACs")
    out.print(rich_table(["layer", "type", "output", "params", "MACs"],
                         [[row["name"], row["type"], str(tuple(row["output_shape"])), f"{row['params']:,}",
                           f"{row['macs']:,}" if row["macs"] is not None else "?"]
                          for row in data["layers"]], right=[3, 4]))
    if show_groups:
        rows = []
        for grp in data["groups"]:
            others = [f"{k}({','.join(v)})" for k, v in grp["members"].items() if k not in grp["sources"]]
            rows.append([str(grp["id"]), str(grp["channels"]), str(grp["prunable"]), ", ".join(grp["sources"]),
                         ", ".join(others), "; ".join(grp["pinned_reasons"])])
        out.print(rich_table(["group", "channels", "prunable", "sources (out)", "other members", "pinned because"], rows,
                             title="dependency groups"))
    return data
