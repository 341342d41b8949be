-- wrk driver for GET /api/wallets/{id}/transactions (bench/pooling.py runs it).
--
--   wrk -t1 -c8 -d10s -s bench/wrk/history.lua http://127.0.0.1:PORT -- history WALLETS_FILE TOKEN RUN_ID
--
-- Each request reads the first page of a random customer wallet's history.
-- done() prints the same "BENCH_JSON {...}" line as transfer.lua.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   local wallets_file, token = args[2], args[3]
   local ids = {}
   for line in io.lines(wallets_file) do
      if #line > 0 then table.insert(ids, line) end
   end
   customers = {}
   for i = 2, #ids do customers[#customers + 1] = ids[i] end
   headers = {["Authorization"] = "Token " .. token}
   math.randomseed(os.time() + 7919 * tid + math.floor(os.clock() * 1e6))
   n2xx, n200, n4xx, n5xx, nother, samples = 0, 0, 0, 0, 0, 0
end

function request()
   local path = "/api/wallets/" .. customers[math.random(#customers)] .. "/transactions?limit=20"
   return wrk.format("GET", path, headers)
end

function response(status, hdrs, body)
   if status >= 200 and status < 300 then
      n2xx = n2xx + 1
      if status == 200 then n200 = n200 + 1 end
   elseif status >= 500 then
      n5xx = n5xx + 1
   elseif status >= 400 then
      n4xx = n4xx + 1
   else
      nother = nother + 1
   end
   if status ~= 200 and samples < 3 then
      samples = samples + 1
      io.stderr:write(string.format("unexpected %d: %s\n", status, string.sub(body or "", 1, 300)))
   end
end

function done(summary, latency, requests)
   local c = {n2xx = 0, n200 = 0, n4xx = 0, n5xx = 0, nother = 0}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(c) do
         c[name] = c[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, ' ..
      '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "non_2xx_3xx": %d, ' ..
      '"status": {"2xx": %d, "200": %d, "201": 0, "409": 0, "422": 0, "4xx_other": %d, "5xx": %d, "other": %d}, ' ..
      '"replay_ok": 0, "replay_bad": 0, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
      c.n2xx, c.n200, c.n4xx, c.n5xx, c.nother,
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
