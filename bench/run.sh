#!/usr/bin/env bash
# bench/run.sh - every benchmark in one run on this machine, beside its baselines.
#
#   bench/run.sh [RUNS]      (default 3 runs of each figure; medians are printed)
#
# Brings the local stack up (scripts/dev up, Release), then measures, in this order:
#   baseline  pgbench: single-row INSERT commits, 16 clients, 10 s
#   baseline  raw JetStream async publish loop (bench_js_publish)
#   baseline  the disk: 500 fdatasync/s for 20 s beside var/ (bench_fsync), and the
#             p99 floor its stalls put under a flow of 4 synchronous commits
#   (a)       catalog commands/s end to end (bench_catalog_cmd), then p50/p99 at half of it
#   (b)       HTTP through the edge: POST and GET /api/v1/products, GET /healthz (wrk)
#   (c)       completed 3-step sagas/s with a no-op participant (bench_saga), then at half
#   (d)       stock reservations (bench_flash_sale): a flash sale (2,000 buyers, 100 units),
#             one hot product vs 4,000 uncontended ones, and GET /api/v1/products?limit=20
#   (e)       members (bench_members): logins/s through the edge vs a bare Argon2id verify
#             loop on as many threads as the hashing pool (three pairs in turn, the median
#             of their ratios); GET /api/v1/me p99 paced at
#             100/s idle and during a login storm (three pairs in turn, the median of
#             their ratios); GET /api/v1/me req/s (wrk) vs /healthz;
#             the edge's cached and first-seen token check in-process
#   (f)       layby-ctl: `events replay --json` over 200,000 recorded events beside the raw
#             ordered read of the same messages (bench_replay), and `events replay --check`
#             over 10,000 of (c)'s recorded sagas (sagas re-decided and compared per second)
#   (g)       checkouts over HTTP (bench_checkout): 128 members signed in for real, then
#             place + pay with 48/96/192 clients (the peak), then paced at half of it and at
#             a quarter (each call's p99 against the disk's 4-commit floor, bench_fsync run
#             right after it, issue 25; and the quarter's orchestrator hop p50 against its
#             participants', read back from the streams by bench/flow_hops.py); and the
#             flash sale over HTTP (2,000 members with
#             minted tokens, 100 units)
# and prints one table of medians with ratios to the baselines. docs/BENCHMARKS.md
# records the results. Nothing else should run on the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
B=build/release

scripts/dev up >/dev/null
eval "$(scripts/dev env)"
export LAYBY_NATS_URL LAYBY_CTL_NATS_USER LAYBY_CTL_NATS_PASSWORD LAYBY_PG_ADMIN_URL
OUT=$(mktemp -d /tmp/layby-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
say() { printf '%s\n' "$*" >&2; }

# --- baselines ---------------------------------------------------------------
PGB="$LAYBY_PG_ADMIN_URL"
psql -q "$PGB" -c 'DROP TABLE IF EXISTS public.bench_insert' \
    -c 'CREATE TABLE public.bench_insert (id bigserial PRIMARY KEY, v int NOT NULL)'
echo 'INSERT INTO public.bench_insert (v) VALUES (1);' >"$OUT/insert.sql"
for i in $(seq "$RUNS"); do
    pgbench -n -c 16 -j 2 -T 10 -f "$OUT/insert.sql" "$PGB" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tee -a "$OUT/pgbench" >&2
done
psql -q "$PGB" -c 'DROP TABLE public.bench_insert'
for i in $(seq "$RUNS"); do
    $B/bench/bench_js_publish --count 200000 | tee -a "$OUT/js" >&2
done
# Beside PostgreSQL's data (var/pg, or the folder it fell back to).
export LAYBY_BENCH_FSYNC_DIR
LAYBY_BENCH_FSYNC_DIR=$(dirname "$(psql -Atq "$PGB" -c 'SHOW data_directory')")
for i in $(seq "$RUNS"); do
    $B/bench/bench_fsync --seconds 20 --rate 500 --commits 4 | tee -a "$OUT/fsync" >&2
done

# --- (a) catalog commands ----------------------------------------------------
for i in $(seq "$RUNS"); do
    $B/bench/bench_catalog_cmd --count 40000 | tee -a "$OUT/cmd" >&2
done
CMD=$(field per_s <"$OUT/cmd" | median)
HALF=$(awk -v r="$CMD" 'BEGIN {printf "%d", r / 2}')
for i in $(seq "$RUNS"); do
    $B/bench/bench_catalog_cmd --count $((HALF * 6)) --rate "$HALF" | tee -a "$OUT/cmd_half" >&2
done

# --- (b) HTTP ------------------------------------------------------------------
export LAYBY_BENCH_TOKEN
LAYBY_BENCH_TOKEN=$($B/layby-ctl token mint --sub bench --role ADMIN --ttl 1h)
ID=$(curl -s -X POST localhost:8080/api/v1/products -H "Authorization: Bearer $LAYBY_BENCH_TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench","price":1000,"details":"","category":"bench","stock":1}' | jq -r .productId)
http() { # name, then wrk args
    local name=$1
    shift
    for i in $(seq "$RUNS"); do
        wrk -t2 -c32 -d10s --latency "$@" | awk -v n="$name" '
            /Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2}
            END {printf "%s per_s=%s p99=%s\n", n, rps, p99}' | tee -a "$OUT/$name" >&2
    done
}
http healthz http://127.0.0.1:8080/healthz
http get "http://127.0.0.1:8080/api/v1/products/$ID"
http post -s bench/wrk_post_product.lua http://127.0.0.1:8080/api/v1/products

# --- (c) sagas -------------------------------------------------------------------
# The test saga types and their participant are test-only code (LAYBY_TEST_HOOKS;
# tests/support/services-test.tsv): for this section a Release build with the
# hooks on replaces the stack's orchestrator, with the admin NATS user since the
# production permission table has no test rows. scripts/dev up puts the stack's
# own orchestrator back afterwards.
BT=build/bench-test
cmake -S . -B $BT -DCMAKE_BUILD_TYPE=Release -DLAYBY_TEST_HOOKS=ON >/dev/null
cmake --build $BT -j2 --target layby-sagatest layby-orchestrator >/dev/null
$B/bench/bench_saga --setup 1
ORCH_PID=var/run/layby-orchestrator.pid
kill "$(cat $ORCH_PID)" 2>/dev/null || true
while kill -0 "$(cat $ORCH_PID)" 2>/dev/null; do sleep 0.1; done
LAYBY_ORCHESTRATOR_NATS_USER=$LAYBY_CTL_NATS_USER LAYBY_ORCHESTRATOR_NATS_PASSWORD=$LAYBY_CTL_NATS_PASSWORD \
    $BT/layby-orchestrator 2>"$OUT/orchestrator.log" &
BENCH_ORCH=$!
LAYBY_SAGATEST_NOOP=1 $BT/layby-sagatest --database-url "$LAYBY_PG_ADMIN_URL?options=-csearch_path%3Dsagatest" \
    --nats-user "$LAYBY_CTL_NATS_USER" --nats-password "$LAYBY_CTL_NATS_PASSWORD" \
    --log-level warn 2>"$OUT/participant.log" &
BENCH_PART=$!
until curl -fsS -o /dev/null "http://127.0.0.1:$LAYBY_ORCHESTRATOR_METRICS_PORT/healthz" 2>/dev/null; do
    kill -0 $BENCH_ORCH || { tail "$OUT/orchestrator.log" >&2; exit 1; }
    sleep 0.1
done
sleep 1
for i in $(seq "$RUNS"); do
    $B/bench/bench_saga --count 20000 | tee -a "$OUT/saga" >&2
done
SAGA=$(field per_s <"$OUT/saga" | median)
SHALF=$(awk -v r="$SAGA" 'BEGIN {printf "%d", r / 2}')
for i in $(seq "$RUNS"); do
    $B/bench/bench_saga --count $((SHALF * 6)) --rate "$SHALF" | tee -a "$OUT/saga_half" >&2
done
kill $BENCH_ORCH $BENCH_PART
wait $BENCH_ORCH $BENCH_PART 2>/dev/null || true
scripts/dev up >/dev/null

# --- (d) stock reservations ------------------------------------------------------
for i in $(seq "$RUNS"); do
    $B/bench/bench_flash_sale --buyers 2000 --products 1 --units 100 | tee -a "$OUT/flash" >&2
    $B/bench/bench_flash_sale --buyers 4000 --products 1 --units 4000 | tee -a "$OUT/hot" >&2
    $B/bench/bench_flash_sale --buyers 4000 --products 4000 --units 1 | tee -a "$OUT/cold" >&2
done
# The list's ratio is to a /healthz run beside it, not to (b)'s minutes earlier.
http healthz_d http://127.0.0.1:8080/healthz
http list "http://127.0.0.1:8080/api/v1/products?limit=20"

# --- (e) members -------------------------------------------------------------------
# The hashing pool's size and the queue before it (LAYBY_MEMBER_HASH_THREADS and
# _QUEUE, defaults 1 and 1): the bare loop gets as many threads as the pool, the
# storm as many clients as the pool admits at once (more would only get 429).
POOL=${LAYBY_MEMBER_HASH_THREADS:-1}
ADMITS=$((POOL + ${LAYBY_MEMBER_HASH_QUEUE:-1}))
export LAYBY_MAILBOX LAYBY_EDGE_PORT
# /me's storm figure is the median of ME_PAIRS idle/storm pairs in turn, each
# pair's own ratio: a p99 of 1,000 requests swings 1.3-2.4 x between rounds in
# the same minutes (lead's quiet run, 2026-12-03), and a pair shares its minutes.
ME_PAIRS=3
# Logins against the bare loop the same way, LOGIN_PAIRS pairs in turn: a
# bare loop's process runs its hashes at one of two speeds ~2 x apart, picked
# at its start (BENCHMARKS.md, twenty-eighth sitting), so one run of it is a
# coin toss: three pairs, and the median of their ratios.
LOGIN_PAIRS=3
for i in $(seq "$RUNS"); do
    for _ in $(seq "$LOGIN_PAIRS"); do
        $B/bench/bench_members --argon-threads "$POOL" --seconds 5 | tee -a "$OUT/argon" >&2
        $B/bench/bench_members --login-clients "$ADMITS" --seconds 5 | tee -a "$OUT/login" >&2
    done
    for _ in $(seq "$ME_PAIRS"); do
        $B/bench/bench_members --me-rate 100 --seconds 10 | tee -a "$OUT/me_idle" >&2
        $B/bench/bench_members --me-rate 100 --seconds 10 --storm "$ADMITS" | tee -a "$OUT/me_storm" >&2
    done
    $B/bench/bench_members --auth-micro 200000 | tee -a "$OUT/auth" >&2
done
export LAYBY_BENCH_MEMBER_TOKEN
LAYBY_BENCH_MEMBER_TOKEN=$($B/bench/bench_members --token 1)
http me -s bench/wrk_me.lua http://127.0.0.1:8080/api/v1/me

# --- (f) layby-ctl ---------------------------------------------------------------
for i in $(seq "$RUNS"); do
    LAYBY_BENCH_CTL=$B/layby-ctl $B/bench/bench_replay --count 200000 | tee -a "$OUT/replay" >&2
done
# --check needs the saga types of (c): the test-hooks build of the tool. Exit 1
# (a saga differs) still prints the summary line.
cmake --build $BT -j2 --target layby-ctl >/dev/null
export LAYBY_CTL_DATABASE_URL
for i in $(seq "$RUNS"); do
    { $BT/layby-ctl events replay --check --saga-type sagabench --limit 10000 --json 2>/dev/null || true; } |
        jq -r 'select(.summary) | .summary |
            "check checked=\(.checked) differ=\(.differ) read_s=\(.readSeconds) per_s=\(.sagasPerSecond | floor)"' |
        tee -a "$OUT/check" >&2
done

# --- (g) checkouts over HTTP -----------------------------------------------------
# A failed run (errors, or a flash sale that did not end 100/1,900) is reported and
# the rest of the table still printed.
: >"$OUT/checkout"
: >"$OUT/flash_http"
: >"$OUT/fsync_g"
: >"$OUT/hops_g"
for i in $(seq "$RUNS"); do
    $B/bench/bench_checkout --members 128 --clients 192 --seconds 10 | tee -a "$OUT/checkout" >&2 ||
        say "(g) bench_checkout run $i failed"
    # Issue 25's hop ratio at the same load: the quarter's orchestrator and
    # participant hops, read back from the streams (bench/flow_hops.py).
    qline=$(grep '^checkout_quarter' "$OUT/checkout" | tail -1 || true)
    qf=$(field from_ms <<<"$qline")
    qt=$(field to_ms <<<"$qline")
    if [ -n "$qf" ] && [ -n "$qt" ]; then
        for s in LAYBY_CMD LAYBY_EVT; do
            $B/layby-ctl events replay --stream $s --json --limit 2000000 \
                --since "$(date -u -d @$((qf / 1000 - 1)) +%FT%TZ)" \
                --until "$(date -u -d @$((qt / 1000 + 3)) +%FT%TZ)" >"$OUT/hops_$s.jsonl"
        done
        bench/flow_hops.py --summary --from-ms "$qf" --to-ms "$qt" \
            "$OUT/hops_LAYBY_CMD.jsonl" "$OUT/hops_LAYBY_EVT.jsonl" | tee -a "$OUT/hops_g" >&2
        rm -f "$OUT"/hops_LAYBY_*.jsonl
    fi
    # The disk's floor in the same minutes as the quarter run just before (issue 25):
    # the baseline's, minutes earlier, is another disk on this machine.
    $B/bench/bench_fsync --seconds 10 --rate 500 --commits 4 | tee -a "$OUT/fsync_g" >&2
    $B/bench/bench_checkout --flash 2000 --units 100 --clients 48 | tee -a "$OUT/flash_http" >&2 ||
        say "(g) bench_checkout --flash run $i failed"
done

# --- summary -----------------------------------------------------------------
PG=$(median <"$OUT/pgbench")
JS=$(field per_s <"$OUT/js" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# pair_ratios FIELD NUM DEN: line n of NUM over line n of DEN (runs taken in
# pairs, in turn), one ratio a line.
pair_ratios() {
    paste <(field "$1" <"$2") <(field "$1" <"$3") | awk '$2 > 0 {printf "%.2f\n", $1 / $2}'
}
wrkrate() { field per_s <"$OUT/$1" | median; }
echo
echo "medians of $RUNS runs ($(date -u +%FT%TZ), $(nproc) cores)"
printf '%-44s %12s  %s\n' "figure" "value" "ratio"
printf '%-44s %12s\n' "pgbench 16 clients, single-row insert tps" "$PG"
printf '%-44s %12s\n' "JetStream async publish msg/s" "$JS"
printf '%-44s %12s\n' "disk: fdatasync p99 ms (500/s)" "$(field p99_ms <"$OUT/fsync" | median)"
printf '%-44s %12s\n' "disk: time stalled > 2 ms, %" "$(field stalled_pct <"$OUT/fsync" | median)"
printf '%-44s %12s\n' "disk: stalls > 20 ms per minute" "$(field stalls_20ms_per_min <"$OUT/fsync" | median)"
printf '%-44s %12s\n' "disk: p99 floor of a 4-commit flow, ms" "$(field floor_p99_ms <"$OUT/fsync" | median)"
printf '%-44s %12s  %s x pgbench, %s x JetStream\n' "(a) catalog commands/s, end to end" "$CMD" \
    "$(ratio "$CMD" "$PG")" "$(ratio "$CMD" "$JS")"
printf '%-44s %12s\n' "(a) at $HALF/s: p50 ms" "$(field p50_ms <"$OUT/cmd_half" | median)"
printf '%-44s %12s\n' "(a) at $HALF/s: p99 ms" "$(field p99_ms <"$OUT/cmd_half" | median)"
H=$(wrkrate healthz)
G=$(wrkrate get)
P=$(wrkrate post)
printf '%-44s %12s\n' "(b) GET /healthz req/s" "$H"
printf '%-44s %12s  %s x healthz\n' "(b) GET /api/v1/products/{id} req/s" "$G" "$(ratio "$G" "$H")"
printf '%-44s %12s  %s x healthz\n' "(b) POST /api/v1/products req/s" "$P" "$(ratio "$P" "$H")"
printf '%-44s %12s\n' "(b) p99: healthz / get / post" \
    "$(field p99 <"$OUT/healthz" | sort -n | sed -n "$(((RUNS + 1) / 2))p") / $(field p99 <"$OUT/get" | sort -n | sed -n "$(((RUNS + 1) / 2))p") / $(field p99 <"$OUT/post" | sort -n | sed -n "$(((RUNS + 1) / 2))p")"
printf '%-44s %12s  %s x pgbench\n' "(c) completed 3-step sagas/s" "$SAGA" "$(ratio "$SAGA" "$PG")"
printf '%-44s %12s\n' "(c) at $SHALF/s: p50 ms" "$(field p50_ms <"$OUT/saga_half" | median)"
printf '%-44s %12s\n' "(c) at $SHALF/s: p99 ms" "$(field p99_ms <"$OUT/saga_half" | median)"
FL=$(field decide_s <"$OUT/flash" | median)
HOT=$(field per_s <"$OUT/hot" | median)
COLD=$(field per_s <"$OUT/cold" | median)
L=$(wrkrate list)
printf '%-44s %12s  (%s)\n' "(d) flash sale 2,000 buyers/100 units, s" "$FL" \
    "$(sed -n 1p "$OUT/flash" | grep -o 'reserved=[0-9]* rejected=[0-9]* other=[0-9]*')"
printf '%-44s %12s\n' "(d) flash sale reservations/s" "$(field per_s <"$OUT/flash" | median)"
printf '%-44s %12s  %s x uncontended\n' "(d) hot product reservations/s" "$HOT" "$(ratio "$HOT" "$COLD")"
printf '%-44s %12s\n' "(d) uncontended reservations/s" "$COLD"
printf '%-44s %12s  %s x healthz beside it (%s), p99 %s\n' "(d) GET /api/v1/products?limit=20 req/s" "$L" \
    "$(ratio "$L" "$(wrkrate healthz_d)")" "$(wrkrate healthz_d)" "$(field p99 <"$OUT/list" | sort -n | sed -n "$(((RUNS + 1) / 2))p")"
AR=$(field per_s <"$OUT/argon" | median)
LG=$(field per_s <"$OUT/login" | median)
MI=$(field p99_ms <"$OUT/me_idle" | median)
MS=$(field p99_ms <"$OUT/me_storm" | median)
# storm / idle p99 of each pair (line n of both files), then their median
ME_RATIOS=$(pair_ratios p99_ms "$OUT/me_storm" "$OUT/me_idle")
MR=$(median <<<"$ME_RATIOS")
ME=$(wrkrate me)
CU=$(field cached_us <"$OUT/auth" | median)
FU=$(field first_seen_us <"$OUT/auth" | median)
# CPU time a request may take when the cores are saturated: cores / req/s.
REQ_US=$(awk -v r="$ME" -v c="$(nproc)" 'BEGIN {printf "%.0f", c * 1e6 / r}')
printf '%-44s %12s\n' "(e) bare Argon2id verify/s, $POOL thread(s)" "$AR"
LOGIN_RATIOS=$(pair_ratios per_s "$OUT/login" "$OUT/argon")
printf '%-44s %12s  %s x bare verify loop (target >= 0.8; median of the pairs %s)\n' \
    "(e) logins/s through the edge" "$LG" "$(median <<<"$LOGIN_RATIOS")" "$(paste -sd" " <<<"$LOGIN_RATIOS")"
printf '%-44s %12s\n' "(e) GET /me p99 ms at 100/s, idle" "$MI"
printf '%-44s %12s  %s x idle (target <= 2; median of the pairs %s), %s logins/s meanwhile\n' \
    "(e) GET /me p99 ms at 100/s, login storm" "$MS" "$MR" "$(paste -sd" " <<<"$ME_RATIOS")" \
    "$(field storm_per_s <"$OUT/me_storm" | median)"
printf '%-44s %12s  %s x healthz, p99 %s\n' "(e) GET /api/v1/me req/s (wrk)" "$ME" "$(ratio "$ME" "$H")" \
    "$(field p99 <"$OUT/me" | sort -n | sed -n "$(((RUNS + 1) / 2))p")"
printf '%-44s %12s  %s of a request (%s us of CPU at that rate)\n' "(e) cached token check, us" "$CU" \
    "$(awk -v a="$CU" -v b="$REQ_US" 'BEGIN {printf "%.2f%%", 100 * a / b}')" "$REQ_US"
printf '%-44s %12s  libjwt: %s us\n' "(e) first-seen token check, us" "$FU" \
    "$(field libjwt_us <"$OUT/auth" | median)"
printf '%-44s %12s  libjwt: %s us\n' "(e) access token signature, us" \
    "$(field sign_us <"$OUT/auth" | median)" "$(field libjwt_sign_us <"$OUT/auth" | median)"
RJ=$(field json_per_s <"$OUT/replay" | median)
RR=$(field raw_per_s <"$OUT/replay" | median)
printf '%-44s %12s  %s x raw ordered read (%s/s)\n' "(f) events replay --json, events/s" "$RJ" \
    "$(ratio "$RJ" "$RR")" "$RR"
printf '%-44s %12s  (%s)\n' "(f) events replay --check, sagas/s" "$(field per_s <"$OUT/check" | median)" \
    "$(sed -n 1p "$OUT/check" | grep -o 'checked=[0-9]* differ=[0-9]*')"
# ck LINE FIELD: the median of FIELD over bench_checkout's "checkout_LINE ..." lines.
ck() { { grep "^checkout_$1 " "$OUT/checkout" || true; } | field "$2" | median; }
ckhalf() { ck half "$1"; }
CK=$(ckhalf peak_per_s)
printf '%-44s %12s  %s x pgbench\n' "(g) checkouts/s at the peak (place + pay)" "$CK" "$(ratio "$CK" "$PG")"
printf '%-44s %12s\n' "(g) at half: place p50 / p99 ms" "$(ckhalf place_p50_ms) / $(ckhalf place_p99_ms)"
printf '%-44s %12s\n' "(g) at half: pay p50 / p99 ms" "$(ckhalf pay_p50_ms) / $(ckhalf pay_p99_ms)"
printf '%-44s %12s\n' "(g) at half: checkout p50 / p99 ms" "$(ckhalf checkout_p50_ms) / $(ckhalf checkout_p99_ms)"
ckq() { ck quarter "$1"; }
FG=$(field floor_p99_ms <"$OUT/fsync_g" | median)
xfloor() { awk -v a="$1" -v b="$FG" 'BEGIN {if (a != "" && b > 0) printf "%.1f", a / b; else printf "-"}'; }
printf '%-44s %12s\n' "(g) at a quarter: place / pay / checkout p50 ms" \
    "$(ckq place_p50_ms) / $(ckq pay_p50_ms) / $(ckq checkout_p50_ms)"
printf '%-44s %12s  %s / %s / %s x the floor beside it (%s ms; target <= 3)\n' \
    "(g) at a quarter: place / pay / checkout p99 ms" \
    "$(ckq place_p99_ms) / $(ckq pay_p99_ms) / $(ckq checkout_p99_ms)" "$(xfloor "$(ckq place_p99_ms)")" \
    "$(xfloor "$(ckq pay_p99_ms)")" "$(xfloor "$(ckq checkout_p99_ms)")" "$FG"
# What a checkout costs at a quarter against the peak: the quarter's p99 is
# queueing on cores that the unbatched work keeps busy (docs/BENCHMARKS.md).
printf '%-44s %12s  %s x the peak'"'"'s (%s ms)\n' "(g) the stack's CPU a checkout at a quarter, ms" \
    "$(ck cost quarter_ms)" "$(ck cost quarter_x)" "$(ck cost peak_ms)"
HG="$OUT/hops_g"
printf '%-44s %12s  %s x (target <= 2; %s / %s hops)\n' "(g) at a quarter: orch. / participant hop p50" \
    "$(field orch_p50_ms <"$HG" | median) / $(field part_p50_ms <"$HG" | median)" \
    "$(field ratio <"$HG" | median)" "$(field orch_n <"$HG" | median)" "$(field part_n <"$HG" | median)"
printf '%-44s %12s  (%s)\n' "(g) HTTP flash sale 2,000/100: sold out, s" "$(field soldout_s <"$OUT/flash_http" | median)" \
    "$(sed -n 1p "$OUT/flash_http" | grep -o 'payment_pending=[0-9]* out_of_stock=[0-9]* http202=[0-9]* http5xx=[0-9]* timeouts=[0-9]*')"
echo "raw results: $OUT"
