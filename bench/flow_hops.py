#!/usr/bin/env python3
"""bench/flow_hops.py - every hop of any flow, from the streams alone.

    since=$(date -u +%Y-%m-%dT%H:%M:%SZ); sleep 1
    ... run checkouts (bench_checkout) ...
    for s in LAYBY_CMD LAYBY_EVT; do
        build/release/layby-ctl events replay $s --since $since --json \
            --limit 500000 > /tmp/$s.jsonl
    done
    bench/flow_hops.py /tmp/LAYBY_CMD.jsonl /tmp/LAYBY_EVT.jsonl

Where bench/saga_timeline.py knows the test saga's subjects, this one follows
the `Layby-Causation` header: each stored message names the message that made
it, so "cause stored -> effect stored" (JetStream's clock, microseconds) is one
hop, whoever wrote the effect: the orchestrator (an answer -> the next
command), a participant (a command -> its answer) or a relay. Hops are grouped
by "cause subject -> effect subject" and printed in the order they first
happen in a flow, with count, p50, p90, p99 and mean in ms; then each flow's
span (its first stored message to its last) per kind of first message.

    --from-ms A --to-ms B   only hops whose cause was stored in [A, B)
                            (wall-clock ms; bench_checkout prints a paced
                            run's window as from_ms/to_ms)
    --summary               one line instead of the tables, for run.sh:
        hops orch_n= orch_p50_ms= part_n= part_p50_ms= ratio=
    where an orchestrator hop is a saga's input (a start command or an
    event) -> the command it decided, and a participant hop a service's
    command -> its answer (`evt.*`, not `evt.saga.*`); p50 over all hops of
    each kind, ratio = orchestrator / participant (issue 25: <= 2 at the
    same load).
Needs python3 only; an analysis aid, not part of any build.
"""
import argparse
import collections
import json
import statistics
import sys

from saga_timeline import stored_ms  # the stream's RFC 3339 `time`, in ms


def short(subject):
    return subject.removeprefix("layby.")


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def kind(cause, effect):
    """'orch', 'part' or None, from the two subjects (see --summary)."""
    if effect.startswith("layby.cmd.") and not effect.startswith("layby.cmd.saga."):
        if cause.startswith("layby.cmd.saga.start.") or cause.startswith("layby.evt."):
            return "orch"
    if (cause.startswith("layby.cmd.") and not cause.startswith("layby.cmd.saga.")
            and effect.startswith("layby.evt.") and not effect.startswith("layby.evt.saga.")):
        return "part"
    return None


def summary(by_id, lo, hi):
    got = {"orch": [], "part": []}
    for at, subj, cause in by_id.values():
        c = by_id.get(cause) if cause else None
        if c is None or not lo <= c[0] < hi:
            continue
        k = kind(c[1], subj)
        if k:
            got[k].append(at - c[0])
    o, p = sorted(got["orch"]), sorted(got["part"])
    if not o or not p:
        print(f"hops orch_n={len(o)} part_n={len(p)} ratio=-")
        return
    print(f"hops orch_n={len(o)} orch_p50_ms={pct(o, .5):.2f} part_n={len(p)} "
          f"part_p50_ms={pct(p, .5):.2f} ratio={pct(o, .5) / pct(p, .5):.2f}")


def main(argv):
    ap = argparse.ArgumentParser(description="every hop of any flow, from the streams")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--from-ms", type=int, default=0)
    ap.add_argument("--to-ms", type=int, default=1 << 50)
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args(argv)
    lo, hi = a.from_ms, a.to_ms
    by_id, flows = {}, collections.defaultdict(list)
    paths = a.files
    for path in paths:
        with open(path) as f:
            for line in f:
                m = json.loads(line)
                h = m.get("headers") or {}
                mid = h.get("Nats-Msg-Id")
                rec = (stored_ms(m["time"]), m["subject"], h.get("Layby-Causation"))
                if mid:
                    by_id[mid] = rec
                flows[h.get("Layby-Correlation")].append(rec)
    if a.summary:
        summary(by_id, lo, hi)
        return
    hops = collections.defaultdict(list)
    for at, subj, cause in by_id.values():
        c = by_id.get(cause) if cause else None
        if c is None or not lo <= c[0] < hi:
            continue
        key = f"{short(c[1])} -> {short(subj)}"
        hops[key].append(at - c[0])
    print(f"{'hop (cause stored -> effect stored)':<72} {'n':>6} {'p50':>7} {'p90':>7} "
          f"{'p99':>7} {'mean':>7}")
    rank = collections.defaultdict(list)
    for flow in flows.values():
        flow.sort()
        t0 = flow[0][0]
        for at, subj, cause in flow:
            c = by_id.get(cause) if cause else None
            if c:
                rank[f"{short(c[1])} -> {short(subj)}"].append(at - t0)
    for key in sorted(hops, key=lambda k: statistics.median(rank[k]) if rank[k] else 0):
        xs = sorted(hops[key])
        if len(xs) < 10:
            continue
        print(f"{key:<72} {len(xs):>6} {pct(xs, .5):>7.2f} {pct(xs, .9):>7.2f} "
              f"{pct(xs, .99):>7.2f} {statistics.fmean(xs):>7.2f}")
    spans = collections.defaultdict(list)
    for flow in flows.values():
        if len(flow) > 1:
            spans[short(flow[0][1])].append(flow[-1][0] - flow[0][0])
    print("\nflow span (first stored -> last stored), by first message:")
    for k, xs in sorted(spans.items(), key=lambda kv: -len(kv[1])):
        xs.sort()
        if len(xs) >= 10:
            print(f"  {k:<60} n={len(xs):>6} p50={pct(xs, .5):.1f} p99={pct(xs, .99):.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
