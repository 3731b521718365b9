#!/usr/bin/env python3
"""bench/chaos_plot.py - the chaos run's throughput over time as an SVG, and
the recovery time after each fault (issue 22). Standard library only.

    bench/chaos_plot.py OUT_DIR SVG [TITLE]

OUT_DIR holds what tests/e2e/chaos_test.c wrote (LAYBY_CHAOS_OUT): rate.csv
(sec,answered,accepted: requests answered without a 5xx and orders accepted,
per second of the load) and faults.csv (at_ms,kind,target,away_ms). Prints
one Markdown table row per fault on stdout:

    | at | fault | away | before | recovery |

before: mean requests/s over the 10 s before the fault (or since the
previous fault, at least 3 s); recovery: seconds from the fault until a
second, and the 3-second mean from it, are back at 50 % of the larger of
before and the run's median rate from the first fault on (">N" when it never was before the
next fault or the end).
"""
import csv
import sys
from html import escape

THRESHOLD = 0.5
WINDOW = 3


def load(out_dir):
    with open(f"{out_dir}/rate.csv") as f:
        rows = list(csv.DictReader(f))
    rate = [int(r["answered"]) for r in rows]
    accepted = [int(r["accepted"]) for r in rows]
    with open(f"{out_dir}/faults.csv") as f:
        faults = [
            dict(at=int(r["at_ms"]) / 1000.0, kind=r["kind"], target=r["target"],
                 away=int(r["away_ms"]) / 1000.0)
            for r in csv.DictReader(f)
        ]
    return rate, accepted, faults


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def recoveries(rate, faults):
    out = []
    paced = sorted(rate[int(faults[0]["at"]):]) if faults else sorted(rate)
    median = paced[len(paced) // 2] if paced else 0
    for i, f in enumerate(faults):
        s = int(f["at"])
        prev = int(faults[i - 1]["at"] + faults[i - 1]["away"]) + 1 if i else 0
        lo = max(prev, s - 10)
        if s - lo < 3:
            lo = max(0, s - 3)
        before = mean(rate[lo:s])
        # Faults come every 20-40 s and one may still weigh on the next:
        # the bar is 50 % of the larger of that and the run's median rate.
        ref = max(before, median)
        stop = int(faults[i + 1]["at"]) if i + 1 < len(faults) else len(rate)
        rec = None
        for t in range(s, max(s, stop - WINDOW + 1)):
            if min(rate[t], mean(rate[t:t + WINDOW])) >= THRESHOLD * ref:
                rec = max(0.0, t - f["at"])
                break
        out.append((f, before, rec, stop - f["at"]))
    return out


def svg(rate, accepted, faults, title):
    w, h, ml, mr, mt, mb = 960, 360, 56, 16, 28, 40
    pw, ph = w - ml - mr, h - mt - mb
    n = max(len(rate), 1)
    top = max(max(rate, default=1), 1) * 1.1
    x = lambda s: ml + pw * s / n  # noqa: E731
    y = lambda v: mt + ph * (1 - v / top)  # noqa: E731
    colors = {"kill": "#999", "twin-kill": "#8e44ad", "nats-kill": "#c0392b",
              "pg-immediate": "#d35400", "pg-cut": "#2980b9"}
    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{ml}" y="16" font-size="13">{escape(title)}</text>']
    for k in range(5):  # grid and labels
        v = top * k / 4
        p.append(f'<line x1="{ml}" x2="{w - mr}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        p.append(f'<text x="{ml - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for s in range(0, n + 1, 60):
        p.append(f'<text x="{x(s):.1f}" y="{h - mb + 14}" text-anchor="middle">{s}</text>')
    p.append(f'<text x="{ml + pw / 2}" y="{h - 6}" text-anchor="middle">seconds of load</text>')
    p.append(f'<text x="12" y="{mt + ph / 2}" transform="rotate(-90 12 {mt + ph / 2})" '
             f'text-anchor="middle">per second</text>')
    for f in faults:
        c = colors.get(f["kind"], "#999")
        p.append(f'<rect x="{x(f["at"]):.1f}" y="{mt}" width="{max(x(f["away"]) - ml, 1):.1f}" '
                 f'height="{ph}" fill="{c}" opacity="0.25"><title>{escape(f["kind"])} '
                 f'{escape(f["target"])} at {f["at"]:.1f} s</title></rect>')
    for series, c in ((rate, "#222"), (accepted, "#27ae60")):
        pts = " ".join(f"{x(s + 0.5):.1f},{y(v):.1f}" for s, v in enumerate(series))
        p.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.2"/>')
    lx = ml + 8
    legend = [("#222", "requests answered/s"), ("#27ae60", "orders accepted/s")]
    legend += [(c, k) for k, c in colors.items()]
    for i, (c, label) in enumerate(legend):
        p.append(f'<rect x="{lx}" y="{mt + 6 + 14 * i}" width="10" height="10" fill="{c}"/>')
        p.append(f'<text x="{lx + 14}" y="{mt + 15 + 14 * i}">{escape(label)}</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir, path = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "chaos run: throughput and faults"
    rate, accepted, faults = load(out_dir)
    with open(path, "w") as f:
        f.write(svg(rate, accepted, faults, title))
    print("| at (s) | fault | away (s) | before (req/s) | recovery to 50 % (s) |")
    print("|---|---|---|---|---|")
    for f, before, rec, span in recoveries(rate, faults):
        r = f"{rec:.1f}" if rec is not None else f">{span:.0f}"
        print(f"| {f['at']:.1f} | {f['kind']} {f['target']} | {f['away']:.1f} | "
              f"{before:.1f} | {r} |")


if __name__ == "__main__":
    main()
