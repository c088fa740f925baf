"""The spread of several ``fusedoptim-bench --json`` runs, per target and case, as Markdown.

On a shared machine one run is one sample of the host's speed; a target over ten cases is better
judged over several runs. For each case of each target this prints min / median / max over the
runs (column by column, so one row's medians need not come from the same run) and how many runs
met the target::

    fusedoptim-bench --json run1.json; fusedoptim-bench --json run2.json; ...
    python benchmarks/spread.py run1.json run2.json run3.json
    python benchmarks/spread.py --classify run1.json run2.json run3.json
    python benchmarks/spread.py --paired run1.json run2.json run3.json

``--classify`` prints instead, per target, every case-run (one case in one run) that missed:
shown impossible where the bound printed beside it (the largest speed-up the limits measured
alongside allow) is below the target, open otherwise, with the share of the bound reached.
``--paired`` prints each out-of-cache case's bandwidth share two ways: as the bench reports it
(the probe's median time over fusedoptim's) and as the median of per-round ratios, which cancels
a change of the host's speed between rounds (where both took one sample per round: 1e7).

This is a reporting script, not a test: it reads the JSON files and prints tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from fusedoptim.bench import format_ns as number  # three significant digits, as the table

LABELS = {
    "sgd": "SGD",
    "sgd_momentum": "SGD momentum",
    "sgd_nesterov": "SGD Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "rmsprop_centered": "RMSprop centered",
    "rmsprop_momentum": "RMSprop momentum",
    "adadelta": "AdaDelta",
    "adam": "Adam",
    "adam_amsgrad": "Adam amsgrad",
    "adamw": "AdamW",
}
FUSED = ("sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "adam", "adam_amsgrad", "adamw")
NO_FUSED = ("rmsprop", "rmsprop_centered", "adadelta")
Case = dict[str, Any]


def spread(values: Sequence[float | None], digits: Callable[[float], str] = number) -> str:
    known = sorted(value for value in values if value is not None)
    if not known:
        return ""
    return " / ".join(digits(v) for v in (known[0], statistics.median(known), known[-1]))


def percent(value: float) -> str:
    return f"{100 * value:.0f}"


def limit(found: Sequence[Case]) -> str:
    """What sets the cases' bounds: the bandwidth, the square-root/division units (with their
    floor's min / median / max in ns/element), or both in different runs."""
    names = sorted({case.get("bound_limit") or "bandwidth" for case in found})
    text = ", ".join("sqrt/div" if name == "divider" else name for name in names)
    floors = [case["divider_floor_ns"] for case in found if case.get("bound_limit") == "divider"]
    return text + (f" ({spread(floors)} ns/el)" if floors else "")


def bound(case: Case, contender: str) -> float | None:
    """The bench's ``speedup_bound`` (recomputed for JSON files written before it existed)."""
    if "speedup_bound" in case:
        return case["speedup_bound"].get(contender)
    theirs, bandwidth = case["ns_per_element"].get(contender), case.get("probe_gbs")
    if theirs is None or bandwidth is None or not case["out_of_cache"]:
        return None
    return theirs / (case["bytes_per_element"] / max(bandwidth, case["gbs"]))


def met(values: Sequence[bool]) -> str:
    return f"**{sum(values)}/{len(values)}**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def classify(runs: Sequence[dict[str, Any]]) -> None:
    """Each target's case-runs: met, shown impossible (bound below the target) or open."""
    for description in [target["description"] for target in runs[0]["targets"]]:
        met, impossible, open_ = [], [], []
        for number_, run in enumerate(runs, 1):
            target = next(t for t in run["targets"] if t["description"] == description)
            for case in target["cases"]:
                if case["passed"]:
                    met.append(case["value"])
                    continue
                bound_ = target["bounds"].get(case["case"])
                entry = f"run {number_}, {case['case']}: {number(case['value'])}"
                if bound_ is None:
                    open_.append(entry + " (no bound)")
                    continue
                limit_ = target["bound_limits"].get(case["case"], "?")
                entry += f" of {number(bound_)} ({case['value'] / bound_:.0%}, {limit_})"
                (impossible if bound_ < target["threshold"] else open_).append(entry)
        total = len(met) + len(impossible) + len(open_)
        print(f"**{description}**: {total} case-runs; met {len(met)}"
              + (f" ({number(min(met))} to {number(max(met))})" if met else "")
              + f", shown impossible {len(impossible)}, open {len(open_)}")  # fmt: skip
        for kind, entries in (("impossible", impossible), ("open", open_)):
            for entry in entries:
                print(f"- {kind}: {entry}")
        print()


def paired(runs: Sequence[dict[str, Any]]) -> None:
    """Each out-of-cache case's bandwidth share two ways: the probe's median time over
    fusedoptim's (what the bench reports) and the median over rounds of the two samples' ratio.
    The contenders take one sample per round, in turn, so samples with the same index share a
    round; a case whose two sample counts differ (in cache, or 1e6 with its many samples) is
    left out."""
    layouts = sorted({case["layout"] for run in runs for case in run["cases"]
                      if case["out_of_cache"] and case.get("probe")})  # fmt: skip
    for layout in layouts:
        header = ["optimizer"] + [f"run {k}" for k in range(1, len(runs) + 1)]
        rows, below = [], [0, 0]
        names = [c["optimizer"] for c in runs[0]["cases"] if c["layout"] == layout]
        for optimizer in names:
            cells = [LABELS.get(optimizer, optimizer)]
            for run in runs:
                found = [
                    c for c in run["cases"] if (c["optimizer"], c["layout"]) == (optimizer, layout)
                ]
                case = found[0] if found else None
                mine = case["timings"].get("fusedoptim", {}).get("samples") if case else None
                probe = (case.get("probe") or {}).get("samples") if case else None
                if not mine or not probe or len(mine) != len(probe):
                    cells.append("")
                    continue
                of_medians = statistics.median(probe) / statistics.median(mine)
                of_ratios = statistics.median(p / k for p, k in zip(probe, mine))
                below[0] += of_medians < 0.9
                below[1] += of_ratios < 0.9
                cells.append(f"{percent(of_medians)} / {percent(of_ratios)}")
            rows.append(cells)
        if not any(any(cells[1:]) for cells in rows):
            continue  # more samples of one than of the other: rounds not known
        print(f"**{layout}**: share of the probe, ratio of medians / median of per-round ratios; "
              f"below 90%: {below[0]} / {below[1]}\n")  # fmt: skip
        print(table(header, rows))
        print()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by fusedoptim-bench --json")
    parser.add_argument(
        "--classify", action="store_true", help="list each target's misses as impossible or open"
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="out-of-cache bandwidth shares as a ratio of medians and as a median of ratios",
    )
    args = parser.parse_args(argv)
    runs = []
    for path in args.runs:
        with open(path) as handle:
            runs.append(json.load(handle))
    if args.classify:
        classify(runs)
        return
    if args.paired:
        paired(runs)
        return
    threads = max(runs[0]["settings"]["threads"])

    def cases(optimizer: str, layout: str) -> list[Case]:
        return [
            case
            for run in runs
            for case in run["cases"]
            if case["optimizer"] == optimizer
            and case["layout"] == layout
            and case["dtype"] == "float32"
            and case["threads"] == threads
        ]

    names = [name for name in LABELS if cases(name, "1e7") or cases(name, "1e5")]
    ns = lambda found, who: [case["ns_per_element"].get(who) for case in found]  # noqa: E731
    up = lambda found, who: [  # noqa: E731
        case["speedup"][who] for case in found if case["speedup"].get(who) is not None
    ]

    print(f"**10M, one tensor** ({len(runs)} runs; float32, {threads} threads)\n")
    rows = []
    for name in names:
        found = cases(name, "1e7")
        share = [case["bandwidth_fraction"] for case in found]
        rows.append([
            LABELS[name], spread(ns(found, "fusedoptim")), spread(share, percent),
            met([value >= 0.9 for value in share]), spread(up(found, "numpy")),
            spread([bound(case, "numpy") for case in found]),
            met([value >= 8 for value in up(found, "numpy")]), spread(up(found, "torch")),
            spread([bound(case, "torch") for case in found]),
            met([value >= 1 for value in up(found, "torch")]),
        ])  # fmt: skip
    print(table(["optimizer", "fusedoptim ns/el", "% of bw (>= 90)", "met", "vs NumPy (>= 8x)",
                 "bound", "met", "vs torch (>= 1x)", "bound", "met"], rows))  # fmt: skip

    print("\n**1M, one tensor**\n")
    rows = []
    for name in names:
        found = cases(name, "1e6")
        torch_share = [
            case["bytes_per_element"] / case["ns_per_element"]["torch"] / case["probe_gbs"]
            for case in found
            if case["ns_per_element"].get("torch") and case.get("probe_gbs")
        ]
        fused = name in FUSED
        rows.append([
            LABELS[name], spread(ns(found, "fusedoptim")),
            spread([case["bandwidth_fraction"] for case in found], percent),
            spread(up(found, "numpy")), spread([bound(case, "numpy") for case in found]),
            met([value >= 8 for value in up(found, "numpy")]),
            spread(ns(found, "torch")), spread(torch_share, percent),
            spread(up(found, "torch")) if fused else "(below)",
            spread([bound(case, "torch") for case in found]) if fused else "",
            met([value >= 1.5 for value in up(found, "torch")]) if fused else "",
        ])  # fmt: skip
    print(table(["optimizer", "fusedoptim ns/el", "% of bw", "vs NumPy (>= 8x)", "bound", "met",
                 "torch ns/el", "torch % of bw", "vs torch fused (>= 1.5x)", "bound", "met"],
                rows))  # fmt: skip

    print("\n**500 x 2,000**\n")
    rows = []
    for name in names:
        found = cases(name, "500x2000")
        raw, corrected = [], []
        for run in runs:  # the two cases of one run
            pair = {
                case["layout"]: case
                for case in run["cases"]
                if case["optimizer"] == name
                and case["layout"] in ("500x2000", "1e6")
                and case["dtype"] == "float32"
                and case["threads"] == threads
            }
            if len(pair) < 2:
                continue
            many, one = pair["500x2000"], pair["1e6"]
            ratio = many["ns_per_element"]["fusedoptim"] / one["ns_per_element"]["fusedoptim"]
            raw.append(ratio)
            if many.get("probe_gbs") and one.get("probe_gbs"):
                corrected.append(ratio * many["probe_gbs"] / one["probe_gbs"])
        fused = name in FUSED
        needs = [
            case["bytes_per_element"] / (case["ns_per_element"]["torch"] / 5) / case["probe_gbs"]
            for case in found
            if case["ns_per_element"].get("torch") and case.get("probe_gbs")
        ]
        rows.append([
            LABELS[name], spread(ns(found, "fusedoptim")),
            spread([case["bandwidth_fraction"] for case in found], percent),
            spread(corrected), spread(raw), met([value <= 1.5 for value in corrected]),
            spread(ns(found, "torch")),
            spread(up(found, "torch")) if fused else "(below)",
            spread([bound(case, "torch") for case in found]) if fused else "",
            spread(needs, percent) if fused else "",
            met([value >= 5 for value in up(found, "torch")]) if fused else "",
        ])  # fmt: skip
    print(table(["optimizer", "fusedoptim ns/el", "% of bw", "time / one 1M tensor (<= 1.5x)",
                 "as timed", "met", "torch ns/el", "vs torch fused (>= 5x)", "bound",
                 "% of bw 5x needs", "met"], rows))  # fmt: skip

    print("\n**RMSprop and AdaDelta against torch's for-loop, every size**\n")
    rows = []
    layouts = ["1e3", "1e5", "1e6", "1e7", "500x2000", "200x500"]
    for name in NO_FUSED:
        for layout in layouts:
            found = cases(name, layout)
            if not found:
                continue
            mark = "" if found[0]["out_of_cache"] else " (c)"
            rows.append([
                LABELS[name], layout + mark, spread(ns(found, "fusedoptim")),
                spread(ns(found, "torch")), spread(up(found, "torch")),
                spread([bound(case, "torch") for case in found]), limit(found),
                met([value >= 5 for value in up(found, "torch")]),
            ])  # fmt: skip
    print(table(["optimizer", "layout", "fusedoptim ns/el", "torch ns/el", "vs torch (>= 5x)",
                 "bound", "set by", "met"], rows))  # fmt: skip

    print("\n**Runs**\n")
    for path, run in zip(args.runs, runs):
        probes = [run_["in_place_gbs"] for run_ in run["bandwidth_runs"]]
        case_probes = [case["probe_gbs"] for case in run["cases"] if case.get("probe_gbs")]
        retried = sum(
            timing["attempts"] - 1 for case in run["cases"] for timing in case["timings"].values()
        )
        print(
            f"- `{path}`: started {run['started']}, wall {run['wall_seconds']:.1f} s, other "
            f"processes {run['other_processes_cores'] or 0:.3f} cores, {retried} contender "
            f"measurement(s) repeated; run probes {', '.join(f'{p:.1f}' for p in probes)} GB/s"
            + (
                f", case probes {min(case_probes):.1f} to {max(case_probes):.1f} GB/s"
                if case_probes
                else ""
            )
        )


if __name__ == "__main__":
    main()
