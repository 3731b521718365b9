-- wrk script: POST /api/v1/products with the admin token from $LAYBY_BENCH_TOKEN.
-- Every request creates a new product (no Idempotency-Key).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LAYBY_BENCH_TOKEN")
wrk.body = '{"name":"wrk laptop","price":1290000,"details":"bench","category":"bench","stock":3}'
