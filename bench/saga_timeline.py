#!/usr/bin/env python3
"""bench/saga_timeline.py - where a saga's time goes, hop by hop.

    since=$(date -u +%Y-%m-%dT%H:%M:%SZ); sleep 1
    build/release/bench/bench_saga --count 16000 --rate 1600
    for s in LAYBY_CMD LAYBY_EVT; do
        build/release/layby-ctl replay $s --since $since --limit 200000 > /tmp/$s.jsonl
    done
    bench/saga_timeline.py /tmp/LAYBY_CMD.jsonl /tmp/LAYBY_EVT.jsonl

Reads the `sagabench` sagas' messages from `layby-ctl replay` and uses two
clocks per message, both in milliseconds: when JetStream stored it (`time`)
and when its writer made it (the UUIDv7 `Nats-Msg-Id`: the orchestrator makes
the id while it handles the input, inside its transaction). So for each step:
  orch-in   input stored -> the orchestrator handled it (fetch, BEGIN, claim)
  orch-out  handled -> its command stored (writes, COMMIT, ack, relay, publish)
  part      command stored -> the participant's answer stored
  orch      input stored -> its command stored (the two above, from
            JetStream's clock alone: microseconds, against the participant's)
Prints p50/p90/p99/mean per hop, then, for the slowest 1% of sagas, the mean
of each kind of hop and when they started (a stall shows as one cluster).
Needs python3 only (Debian's python3); analysis aid, not part of any build.
"""
import collections
import json
import statistics
import sys
from datetime import datetime


def stored_ms(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def made_ms(msg_id):
    h = msg_id.replace("-", "")
    return int(h[:12], 16) if len(h) == 32 and h[12] == "7" else None


def load(paths):
    sagas = collections.defaultdict(dict)
    for path in paths:
        with open(path) as f:
            for line in f:
                m = json.loads(line)
                body, subj = m.get("body") or {}, m["subject"]
                key = body.get("sagaId") or m["headers"].get("Layby-Correlation")
                at = (stored_ms(m["time"]), made_ms(m["headers"].get("Nats-Msg-Id", "")))
                step = body.get("step") or 0
                if subj.startswith("layby.cmd.saga.start"):
                    sagas[key]["start"] = at
                elif subj.endswith("sagatest.do"):
                    sagas[key][f"do{step}"] = at
                elif subj.endswith("sagatest.done"):
                    sagas[key][f"done{step}"] = at
                elif subj.endswith("saga.completed"):
                    sagas[key]["end"] = at
    want = ("start", "do0", "done0", "do1", "done1", "do2", "done2", "end")
    return [d for d in sagas.values() if all(k in d and d[k][0] for k in want)]


def hops(d):
    """(name, kind, ms) of one saga's hops, in order."""
    out = [("bench send -> start stored", "send", d["start"][0] - d["start"][1])]
    prev = "start"
    for nxt, answer in (("do0", "done0"), ("do1", "done1"), ("do2", "done2"), ("end", None)):
        out.append((f"{prev} stored -> orchestrator", "orch-in", d[nxt][1] - d[prev][0]))
        out.append((f"orchestrator -> {nxt} stored", "orch-out", d[nxt][0] - d[nxt][1]))
        # The whole hop from JetStream's clock alone (sub-millisecond: the
        # split above rests on the id's whole milliseconds).
        out.append((f"{prev} stored -> {nxt} stored (orchestrator)", "orch", d[nxt][0] - d[prev][0]))
        if answer:
            out.append((f"{nxt} -> {answer} stored (participant)", "part", d[answer][0] - d[nxt][0]))
            prev = answer
    return out


def main(paths):
    sagas = load(paths)
    if not sagas:
        sys.exit("no complete sagabench sagas in the input")
    per = collections.OrderedDict()
    for d in sagas:
        for name, _, ms in hops(d):
            per.setdefault(name, []).append(ms)
    print(f"{len(sagas)} sagas")
    for name, v in per.items():
        v.sort()
        q = lambda p: v[min(len(v) - 1, int(len(v) * p))]
        print(f"{name:45s} p50 {q(.5):7.2f}  p90 {q(.9):7.2f}  p99 {q(.99):7.2f}"
              f"  mean {statistics.mean(v):6.2f}")
    total = sorted(((d["end"][0] - d["start"][1], d) for d in sagas), key=lambda t: -t[0])
    slow = total[: max(1, len(total) // 100)]
    kinds = collections.Counter()
    for _, d in slow:
        for _, kind, ms in hops(d):
            if kind != "orch":  # = orch-in + orch-out
                kinds[kind] += ms / len(slow)
    print(f"slowest 1% ({len(slow)}): mean total {statistics.mean(t for t, _ in slow):.1f} ms;",
          ", ".join(f"{k} {v:.1f}" for k, v in kinds.items()))
    starts = collections.Counter(int(d["start"][1] // 250) * 250 for _, d in slow)
    print("their starts (250 ms buckets, UTC):",
          ", ".join(f"{datetime.utcfromtimestamp(t / 1000).strftime('%H:%M:%S.%f')[:-3]} x{n}"
                    for t, n in sorted(starts.items())))


if __name__ == "__main__":
    main(sys.argv[1:] or ["/tmp/LAYBY_CMD.jsonl", "/tmp/LAYBY_EVT.jsonl"])
