-- wrk script: GET /api/v1/me with a member's access token from
-- $LAYBY_BENCH_MEMBER_TOKEN (bench_members --token 1 makes one).
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LAYBY_BENCH_MEMBER_TOKEN")
