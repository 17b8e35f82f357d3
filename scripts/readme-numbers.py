#!/usr/bin/env python3
"""Writes the figures of one `outlet bench --json` run into README.md.

Every performance figure in the README sits between a pair of markers,

    <!-- bench:begin NAME -->
    ...
    <!-- bench:end NAME -->

and this script rewrites what is between them from the JSON, so that the
README's figures all come from one run and agree with each other. NAME is one
of the regions below (`intro`, `table`, `extism`, `component`, `memory`, `goals`, `sandbox`,
`operations`, `bus`, `streams`); text outside the markers is left as it is, and must hold no figures: the script
refuses a README with a duration, a ratio or a size outside them. A row
without a p99 shows `–`; a ratio the JSON lacks is its row's median over its
baseline's.

    scripts/readme-numbers.py target/bench.json            # rewrite README.md
    scripts/readme-numbers.py --check target/bench.json    # exit 1 if out of date

`scripts/bench.sh --readme` runs the bench and then this script. Python 3's
standard library only.
"""

import argparse
import json
import math
import re
import sys
import textwrap
from pathlib import Path

REGION = re.compile(
    r"(<!-- bench:begin ([\w-]+) -->\n)(.*?)(<!-- bench:end \2 -->)", re.DOTALL
)
MARKER = re.compile(r"<!-- bench:(begin|end) ([\w-]+) -->")
# A figure: a duration (`92.3 µs`), a ratio (`1.29×`, `2x`) or a size (`7492 KiB`).
FIGURE = re.compile(r"\d(?:[\d.,]*\d)?\s?(?:ns|µs|us|ms|s|×|x|KiB|MiB)(?!\w)")


class Missing(Exception):
    """The JSON lacks what a region quotes."""


def sig3(x):
    """`x` with three significant digits (more for whole numbers over 999)."""
    if x == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def duration(ns):
    """A duration in nanoseconds as the README writes it: `183 ns`, `92.3 µs`."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{sig3(ns / scale)} {unit}"
    return f"{ns:.0f} ns"


def times(ratio):
    return f"{sig3(ratio)}×"


def kib(size):
    return f"{size >> 10} KiB"


def paragraph(*parts):
    """The parts joined into one paragraph, wrapped as the README is."""
    text = "".join(parts)
    return textwrap.fill(text, 95, break_long_words=False, break_on_hyphens=False) + "\n"


class Run:
    """One `outlet bench --json` run, and the lookups the regions make."""

    def __init__(self, data):
        self.data = data
        self.rows = data.get("rows") or []

    def extra(self, key, why):
        value = self.data.get(key)
        if value is None:
            raise Missing(f"no `{key}` ({why})")
        return value

    def row(self, mechanism, case_start):
        for row in self.rows:
            if row["mechanism"] == mechanism and row["case"].startswith(case_start):
                return row
        raise Missing(f"no {mechanism} row `{case_start}…`")


def ratio(row):
    if row.get("ratio") is not None:
        return row["ratio"]
    return row["median_ns"] / row["baseline"]["median_ns"]


def intro(run):
    machine = run.data.get("machine") or {}
    on = "this machine"
    if machine.get("cpus"):
        on = f"a machine with {machine['cpus']} CPUs"
        if machine.get("cpu"):
            on += f" ({machine['cpu']})"
    calls = run.extra("calls", "written by every run")
    return paragraph(
        f"Measured by `scripts/bench.sh --readme --calls {calls}` on {on}, all in one run: ",
        "medians and p99s.",
    )


def table(run):
    if not run.rows:
        raise Missing("no rows")
    lines = [
        "| | round trip | median | p99 | baseline in the same run | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in run.rows:
        p99 = duration(row["p99_ns"]) if row.get("p99_ns") is not None else "–"
        base, by = "", ""
        if row.get("baseline"):
            base = f"{row['baseline']['case']}, {duration(row['baseline']['median_ns'])}"
            by = times(ratio(row))
        lines.append(
            f"| {row['mechanism']} | {row['case']} | {duration(row['median_ns'])} | {p99} "
            f"| {base} | {by} |"
        )
    return "\n".join(lines) + "\n"


def extism(run):
    why = "measured given --extism, as scripts/bench.sh does"
    against = run.extra("wasm_vs_extism", why)
    call = run.row("extism", "Greet, Plugin::call")
    create = run.row("extism", "Plugin::new_from_compiled")
    return paragraph(
        f"wasm against Extism, in {against['rounds']} rounds that alternate Extism's program ",
        "with Outlet's measurements (medians of the rounds; each ratio taken within a round): ",
        f"the Rust guest's Greet {duration(against['ours_greet_ns'])} against Extism's ",
        f"`Plugin::call` {duration(call['median_ns'])} ",
        f"({times(against['greet_times_faster'])} faster); a fresh instance (store, ",
        f"instantiate, ABI check) {duration(against['ours_fresh_instance_ns'])} against ",
        f"`Plugin::new_from_compiled` {duration(create['median_ns'])} ",
        f"({times(against['instance_times_faster_than_create'])}); a fresh instance and a ",
        f"Greet {times(against['instance_times_faster_than_create_and_first_call'])} faster ",
        "than `new_from_compiled` and its first call.",
    )


def component(run):
    row = run.row("wasm", "Greet, component")
    theirs, ours = row["median_ns"], row["baseline"]["median_ns"]
    faster = "Outlet's Rust guest" if ours < theirs else "the component"
    return paragraph(
        "The same Greet as a WebAssembly component (WIT, a `wit-bindgen` guest for ",
        "`wasm32-wasip2`, called through wasmtime's `bindgen!` bindings with wasmtime's ",
        "default settings: no epoch interruption or pooling allocator), interleaved ",
        f"with Outlet's Rust guest: the component {duration(theirs)} ",
        f"(p99 {duration(row['p99_ns'])}), Outlet's guest {duration(ours)} ",
        f"(p99 {duration(row['baseline']['p99_ns'])}); {faster} is ",
        f"{times(max(theirs, ours) / min(theirs, ours))} faster.",
    )


def memory(run):
    native = run.extra("native_loading", "measured with the native rows")
    wasm = run.extra("wasm_memory", "measured with the wasm rows")
    return paragraph(
        f"Resident memory: {kib(native['rss_before'])} before loading a native plugin, ",
        f"{kib(native['rss_one_loaded'])} with it loaded, ",
        f"{kib(native['rss_after_100_cycles'])} after 100 load/unload cycles; ",
        f"{kib(wasm['rss_before'])} before 100 wasm loads and 10,000 wasm instances made and ",
        f"dropped, {kib(wasm['rss_after_100_loads_and_10000_instances'])} after.",
    )


def goals(run):
    rust = run.row("wasm", "Greet, Rust guest")
    wat = run.row("wasm", "Greet, WAT guest")
    call = run.row("extism", "Greet, Plugin::call")
    against = run.extra("wasm_vs_extism", "measured given --extism")
    return paragraph(
        f"wasm's two goals: the Rust guest's Greet is {times(ratio(rust))} the direct call ",
        f"(the goal is 2.5×), and {times(against['greet_times_faster'])} faster than Extism's ",
        "call (the goal is 25×). The WAT guest, whose host side is the same and whose own ",
        f"work is a few dozen instructions, is {times(ratio(wat))}. Extism's call is ",
        f"{times(ratio(call))} a bare `format!` greet, so 25× faster than it means within ",
        f"about {times(ratio(call) / 25)} of the direct greet.",
    )


def sandbox(run):
    plain = run.row("exec", "Greet, one process per call")
    exec_boxed = run.row("exec", "Greet in the OS sandbox")
    start = run.row("rpc", "start to first Get, plugin in the OS sandbox")
    get = run.row("rpc", "KV Get, plugin in the OS sandbox")
    go_start = run.row("rpc", "start to first Get, Outlet plugin").get("baseline")
    if not go_start:
        raise Missing("no go-plugin start (measured given --go, as scripts/bench.sh does)")
    than_go = "below" if start["median_ns"] < go_start["median_ns"] else "above"
    return paragraph(
        "The OS sandbox's three goals: an exec call in the sandbox of `untrusted` trust takes ",
        f"{duration(exec_boxed['median_ns'])}, {times(ratio(exec_boxed))} spawning `/bin/true` ",
        f"(the goal is 1.3×; the same call unconfined is {times(ratio(plain))}); an rpc ",
        "plugin's start to first Get in the sandbox of `open` trust takes ",
        f"{duration(start['median_ns'])}, {times(ratio(start))} the same start unconfined (the ",
        f"goal is 1.2×) and {than_go} go-plugin's own start, ",
        f"{duration(go_start['median_ns'])}; and its Get is {times(ratio(get))} the unconfined ",
        "one (the goal is no slower).",
    )


def bus(run):
    inner = run.row("bus", "Greet via the host, native")
    audited = run.row("bus", "the same, audited to a JSON Lines file")
    across = run.row("bus", "Greet via the host, wasm (Rust)")
    return paragraph(
        "The bus's two goals: a call from one in-process plugin to another through the host ",
        "(the native greeter relaying to the C greeter: grant check, routing, the chain's ",
        f"deadline, the audit to `tracing` with no subscriber) takes {duration(inner['median_ns'])}, ",
        f"{times(ratio(inner))} the same Greet made by host code (the goal is 1.5×); with the ",
        f"JSON Lines sink writing each record it takes {duration(audited['median_ns'])}. The ",
        "wasm greeter calling the rpc greeter through the host takes ",
        f"{duration(across['median_ns'])}, {times(ratio(across))} a call from host code to ",
        "each (the goal is within 1.1×).",
    )


def operations(run):
    native = run.row("native", "Greet, Rust dylib")
    counted = {m: run.row(m, "Greet, counted and in a span") for m in
               ("native", "cabi", "rpc", "wasm", "exec")}
    exported = run.row("native", "Greet, counted, to a Prometheus exporter")
    exported_rpc = run.row("rpc", "Greet, counted, to a Prometheus exporter")
    go_start = run.row("rpc", "start to first Get, Go plugin")
    killed = run.row("rpc", "killed every 25 ms")
    stress = run.extra("stress", "written by the rpc rows")
    others = ", ".join(f"{m} {times(ratio(counted[m]))}" for m in ("cabi", "rpc", "wasm", "exec"))
    return paragraph(
        "Running plugins for months: with metrics and spans compiled in and no recorder, the ",
        f"native Greet takes {duration(native['median_ns'])}, {times(ratio(native))} the direct ",
        "call (the goal is 1.3×); counting it costs ",
        f"{times(ratio(counted['native']))} the same host built with `metrics(false)`, and the ",
        f"other mechanisms' Greets {others} (the goal is within 5%). With a Prometheus exporter ",
        f"installed, a native Greet takes {duration(exported['median_ns'])} against ",
        f"{duration(exported['baseline']['median_ns'])} uncounted, and an rpc Greet ",
        f"{duration(exported_rpc['median_ns'])} against {duration(exported_rpc['baseline']['median_ns'])}. ",
        f"An Outlet host starts a Go go-plugin plugin to its first Get in {duration(go_start['median_ns'])}, ",
        f"{times(ratio(go_start))} go-plugin's own Go host (the goal is no slower). Killed every ",
        f"25 ms under four callers for {stress['seconds']:g} s ({stress['kills']} kills), the rpc ",
        f"greeter answers again {duration(killed['median_ns'])} after a kill at the median and ",
        f"{duration(killed['p99_ns'])} at p99 (the goal is within 100 ms at p99); of its calls, ",
        f"{stress['answered']} were answered right and {stress['failed']} failed with ",
        "`Unavailable`, none otherwise.",
    )


def streams(run):
    large = run.extra("stream_1gib", "measured with the streams rows")
    if not large["go_ns"]:
        raise Missing("no go-plugin stream (measured given --go, as scripts/bench.sh does)")
    middle = lambda values: sorted(values)[len(values) // 2]
    ours, theirs = middle(large["outlet_ns"]), middle(large["go_ns"])
    gib = large["bytes"] / 2**30
    task = run.row("rpc", "Greet from a tokio task")
    mechanisms = ("native", "cabi", "rpc", "wasm", "exec")
    small = {m: run.row(m, "Count, no payload") for m in mechanisms}
    each = ", ".join(
        f"{m} {duration(small[m]['median_ns'])} ({times(ratio(small[m]))})" for m in mechanisms
    )
    return paragraph(
        f"Streams and async: a `Count` of {gib:g} GiB in 16 KiB messages through the Outlet ",
        f"host and rpc plugin runs at {gib * 1e9 / ours:.2f} GiB/s against ",
        f"{gib * 1e9 / theirs:.2f} GiB/s for go-plugin's own Go host and Go plugin ",
        f"({times(max(theirs, ours) / min(theirs, ours))} "
        f"{'faster' if ours <= theirs else 'slower'}; each host warmed by a short stream first; "
        "the goal is no ",
        "slower), the host's resident memory growing by ",
        f"{middle(large['outlet_grew_bytes']) / 1e6:.1f} MB during it (the Go host's by ",
        f"{middle(large['go_grew_bytes']) / 1e6:.1f} MB). A small message of a stream (`Count` ",
        f"with no payload) takes, against a unary Greet of the same mechanism: {each}. A unary ",
        f"rpc Greet from a tokio task takes {duration(task['median_ns'])}, {times(ratio(task))} ",
        "the same Greet from blocking code (the goal is within 1.2×).",
    )


REGIONS = {
    "streams": streams,
    "bus": bus,
    "operations": operations,
    "sandbox": sandbox,
    "intro": intro,
    "table": table,
    "extism": extism,
    "component": component,
    "memory": memory,
    "goals": goals,
}


def rewrite(readme, run):
    """The README with every region rewritten; raises ValueError on bad markers."""
    begins = [m.group(2) for m in MARKER.finditer(readme) if m.group(1) == "begin"]
    found = [m.group(2) for m in REGION.finditer(readme)]
    if begins != found or len(MARKER.findall(readme)) != 2 * len(found):
        raise ValueError("a `bench:begin NAME` marker without its `bench:end NAME`, or the reverse")
    if not found:
        raise ValueError("no `<!-- bench:begin NAME -->` markers")
    unknown = sorted(set(found) - set(REGIONS))
    if unknown:
        raise ValueError(f"unknown regions {unknown}; known: {sorted(REGIONS)}")

    def region(match):
        return match.group(1) + REGIONS[match.group(2)](run) + match.group(4)

    out = REGION.sub(region, readme)
    outside = REGION.sub("", out)
    stray = sorted({m.group(0) for m in FIGURE.finditer(outside)})
    if stray:
        raise ValueError(
            f"figures outside the bench markers: {stray}; move them into a region or drop them"
        )
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(
        description="Writes one `outlet bench --json` run's figures into the README."
    )
    parser.add_argument("json", type=Path, help="the file `outlet bench --json` wrote")
    parser.add_argument("--readme", type=Path, default=root / "README.md")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the README differs"
    )
    args = parser.parse_args()
    try:
        run = Run(json.loads(args.json.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"readme-numbers: cannot read {args.json}: {error}")
    readme = args.readme.read_text(encoding="utf-8")
    try:
        out = rewrite(readme, run)
    except ValueError as error:
        sys.exit(f"readme-numbers: {args.readme}: {error}")
    except Missing as error:
        sys.exit(
            f"readme-numbers: {args.json} has {error}: the README quotes a whole run of "
            "`scripts/bench.sh` (no --only)"
        )
    if out == readme:
        print(f"{args.readme}: up to date with {args.json}")
    elif args.check:
        sys.exit(f"readme-numbers: {args.readme} does not hold the figures of {args.json}")
    else:
        args.readme.write_text(out, encoding="utf-8")
        print(f"{args.readme}: figures written from {args.json}")


if __name__ == "__main__":
    main()
