-- wrk script for scripts/loadtest: POST one real JPEG to /v1/identify with the bearer token,
-- count 200 / 503 (the queue bound, by design) / other statuses, and print one summary line.
local token = os.getenv("FACEGATE_TOKEN") or ""
local image_path = os.getenv("LOADTEST_IMAGE") or "tests/fixtures/faces/obama_2.jpg"
local f = assert(io.open(image_path, "rb"))
local image = f:read("*all")
f:close()

wrk.method = "POST"
wrk.body = image
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["Authorization"] = "Bearer " .. token

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, busy, other = 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local n_ok, n_busy, n_other = 0, 0, 0
  for _, t in ipairs(threads) do
    n_ok = n_ok + t:get("ok")
    n_busy = n_busy + t:get("busy")
    n_other = n_other + t:get("other")
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.1f rps=%.1f ok_rps=%.1f p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f " ..
    "status_200=%d status_503_busy=%d status_other=%d socket_errors=%d timeouts=%d\n",
    summary.requests, secs, summary.requests / secs, n_ok / secs,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, n_ok, n_busy, n_other,
    e.connect + e.read + e.write, e.timeout))
end
