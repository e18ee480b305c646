#!/usr/bin/env python3
"""Markdown tables of the kernel labs from bench_labs' Google Benchmark JSON.

bench/bench_labs names its runs Labs/<op>/<version>/<size>[/real_time]. For every op this writes
one table: version, size, wall time, CPU time (all threads), and the speed-ups over the op's v1 at
the same size ("-" where v1 did not run at that size), in wall time (what a caller waits) and in
CPU time (the work done: steadier on a loaded machine, but a threaded version gets no credit for
its threads there). With --benchmark_repetitions the
median aggregate is used; a JSON without aggregates uses its single runs. Each table ends with a
line saying when and on how many CPUs (and at what load) the figures were taken.

Usage:
  ./build/bench/bench_labs --benchmark_repetitions=3 --benchmark_out=labs.json --benchmark_out_format=json
  python3 scripts/lab_table.py labs.json                       # print the tables
  python3 scripts/lab_table.py labs.json --update docs/labs.md # replace each table in the doc
In the doc, a table lives between the lines <!-- lab-table:OP --> and <!-- /lab-table:OP -->;
--update replaces what is between them (atomically: temporary file + rename) and fails if an op
of the JSON has no such block. Exit status 1 with one line on a missing or malformed file.
  python3 scripts/lab_table.py --self-test   # checks the table and the update on a made-up JSON
"""
import argparse
import json
import os
import re
import sys
import tempfile

UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def fail(msg):
    print(f"lab_table: {msg}", file=sys.stderr)
    sys.exit(1)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path} is not JSON ({e.msg} at line {e.lineno})")


def collect(doc, path):
    """{op: [(version, size, wall_ms, cpu_ms, runs)]} in the order the benchmark ran them."""
    runs = doc.get("benchmarks")
    if not isinstance(runs, list):
        fail(f"{path} has no 'benchmarks' list (not Google Benchmark JSON?)")
    has_median = any(r.get("aggregate_name") == "median" for r in runs)
    reps = {}
    rows = {}
    for r in runs:
        name = r.get("run_name") or r.get("name", "")
        parts = name.split("/")
        if len(parts) < 4 or parts[0] != "Labs":
            continue
        op, version, size = parts[1], parts[2], parts[3]
        if r.get("error_occurred"):
            fail(f"{path}: {name} reported an error: {r.get('error_message', '?')}")
        if r.get("run_type") == "aggregate":
            reps[(op, version, size)] = r.get("repetitions", reps.get((op, version, size)))
        if has_median and r.get("aggregate_name") != "median":
            continue
        if not has_median and r.get("run_type") == "aggregate":
            continue
        scale = UNIT_TO_MS.get(r.get("time_unit", "ns"))
        if scale is None:
            fail(f"{path}: {name} has an unknown time unit {r.get('time_unit')!r}")
        rows.setdefault(op, []).append(
            (version, int(size), r["real_time"] * scale, r["cpu_time"] * scale))
    if not rows:
        fail(f"{path} holds no Labs/<op>/<version>/<size> runs")
    out = {}
    for op, lst in rows.items():
        out[op] = [(v, s, w, c, reps.get((op, v, str(s)), 1)) for v, s, w, c in lst]
    return out


def fmt_ms(v):
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(op, rows, context):
    v1 = {s: (w, c) for v, s, w, c, _ in rows if v.startswith("v1")}
    sizes = sorted({s for _, s, _, _, _ in rows})
    lines = ["| version | size | wall time (ms) | CPU time (ms) | speed-up vs v1: wall | CPU |",
             "|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for v, s, w, c, _ in rows:
            if s != size:
                continue
            sw = f"{v1[s][0] / w:.1f}x" if s in v1 and w > 0 else "-"
            sc = f"{v1[s][1] / c:.1f}x" if s in v1 and c > 0 else "-"
            lines.append(f"| {v} | {s} | {fmt_ms(w)} | {fmt_ms(c)} | {sw} | {sc} |")
    reps = max(r for _, _, _, _, r in rows)
    stat = f"median of {reps} repetitions" if reps > 1 else "one run"
    lines.append("")
    lines.append(f"*{op}: {stat}; {context}.*")
    return "\n".join(lines)


def context_line(doc):
    c = doc.get("context", {})
    load_avg = c.get("load_avg")
    parts = [f"measured {c.get('date', '?')}", f"{c.get('num_cpus', '?')} CPUs"]
    if load_avg:
        parts.append("load average " + " / ".join(f"{x:.1f}" for x in load_avg))
    return ", ".join(parts)


def update(doc_path, tables):
    try:
        with open(doc_path) as f:
            text = f.read()
    except OSError as e:
        fail(f"cannot read {doc_path}: {e.strerror}")
    for op, body in tables.items():
        pat = re.compile(rf"(<!-- lab-table:{re.escape(op)} -->\n).*?(<!-- /lab-table:{re.escape(op)} -->)",
                         re.S)
        if not pat.search(text):
            fail(f"{doc_path} has no <!-- lab-table:{op} --> ... <!-- /lab-table:{op} --> block")
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    d = os.path.dirname(os.path.abspath(doc_path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".lab_table.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, doc_path)
    except BaseException:
        os.unlink(tmp)
        raise


def self_test():
    """A made-up bench_labs JSON: medians are used (not means), speed-ups are v1 / version at the
    same size, '-' without v1, and --update replaces only the text between the markers."""
    def run(name, agg, real, cpu, unit="ms"):
        r = {"run_name": name, "real_time": real, "cpu_time": cpu, "time_unit": unit}
        if agg:
            r.update(run_type="aggregate", aggregate_name=agg, repetitions=3)
        else:
            r.update(run_type="iteration")
        return r
    doc = {"context": {"date": "D", "num_cpus": 2, "load_avg": [1.0, 2.0, 3.0]}, "benchmarks": [
        run("Labs/op/v1_a/10/real_time", None, 99.0, 99.0),
        run("Labs/op/v1_a/10/real_time", "mean", 50.0, 50.0),
        run("Labs/op/v1_a/10/real_time", "median", 40.0, 20.0),
        run("Labs/op/v2_b/10/real_time", "median", 10000.0, 5000.0, "us"),
        run("Labs/op/v2_b/100/real_time", "median", 0.5, 0.25, "s"),
        run("Other/x/1", "median", 1.0, 1.0),
    ]}
    with tempfile.TemporaryDirectory() as d:
        jp, mp = os.path.join(d, "b.json"), os.path.join(d, "doc.md")
        with open(jp, "w") as f:
            json.dump(doc, f)
        ops = collect(load(jp), jp)
        assert list(ops) == ["op"], ops
        t = table("op", ops["op"], context_line(doc))
        for want in ["| v1_a | 10 | 40.0 | 20.0 | 1.0x | 1.0x |",
                     "| v2_b | 10 | 10.0 | 5.00 | 4.0x | 4.0x |",
                     "| v2_b | 100 | 500 | 250 | - | - |",
                     "*op: median of 3 repetitions; measured D, 2 CPUs, load average 1.0 / 2.0 / 3.0.*"]:
            assert want in t.split("\n"), f"missing {want!r} in\n{t}"
        with open(mp, "w") as f:
            f.write("intro\n<!-- lab-table:op -->\nold\n<!-- /lab-table:op -->\nend\n")
        update(mp, {"op": "NEW"})
        with open(mp) as f:
            got = f.read()
        assert got == "intro\n<!-- lab-table:op -->\nNEW\n<!-- /lab-table:op -->\nend\n", got
    print("lab_table self-test: OK")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    ap = argparse.ArgumentParser(description="Markdown tables of the kernel labs from bench_labs JSON")
    ap.add_argument("json", help="bench_labs --benchmark_out=FILE --benchmark_out_format=json output")
    ap.add_argument("--update", metavar="DOC", help="replace the tables in DOC (e.g. docs/labs.md)")
    a = ap.parse_args()
    doc = load(a.json)
    ops = collect(doc, a.json)
    ctx = context_line(doc)
    tables = {op: table(op, rows, ctx) for op, rows in ops.items()}
    if a.update:
        update(a.update, tables)
        print(f"lab_table: updated {len(tables)} tables in {a.update}")
    else:
        for op, body in tables.items():
            print(f"#### {op}\n\n{body}\n")


if __name__ == "__main__":
    main()
