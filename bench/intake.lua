-- wrk script for the intake benchmark: POST /api/v1/cases/ with a unique
-- Idempotency-Key (and external_ref) per request.
--   wrk -t2 -c8 -d30s -s bench/intake.lua http://127.0.0.1:PORT -- TOKEN RUN_ID
-- done() prints one JSON line: created (201s), failed (any other status), latency
-- percentiles in microseconds over all requests, and the run's duration.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end

function init(args)
  token = args[1]
  run = args[2]
  sent = 0
  created = 0
  failed = 0
end

function request()
  sent = sent + 1
  local key = run .. "-" .. tid .. "-" .. sent
  local body = '{"workflow":"bench-review","external_ref":"' .. key .. '",'
    .. '"payload":{"vendor":"ACME GmbH","amount":"1200.00","currency":"EUR"}}'
  return wrk.format("POST", "/api/v1/cases/", {
    ["Authorization"] = "Token " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("created")
    bad = bad + thread:get("failed")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"created": %d, "failed": %d, "socket_errors": %d, "duration_us": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    ok, bad, errors.connect + errors.read + errors.write + errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.max))
end
