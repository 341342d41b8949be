-- wrk driver for POST /api/transfers/batch (bench/run.py runs it).
--
--   wrk -t1 -c8 -d10s -s bench/wrk/batch.lua http://127.0.0.1:PORT \
--       -- SIZE WALLETS_FILE TOKEN RUN_ID
--
-- Every request is a batch of SIZE payouts (atomic false) from the pool wallet
-- (the first line of WALLETS_FILE) to random customer wallets, amounts 0.01 to
-- 9.99 as JSON numbers; a fresh Idempotency-Key per batch (RUN_ID-thread-
-- sequence) and per payout (that key, "-", its index). The pool holds enough
-- that no payout fails: every 201 is SIZE payouts that moved.
-- done() prints one line "BENCH_JSON {...}", as transfer.lua does.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   size = tonumber(args[1])
   local wallets_file, token, run_id = args[2], args[3], args[4]
   local ids = {}
   for line in io.lines(wallets_file) do
      if #line > 0 then table.insert(ids, line) end
   end
   pool = ids[1]
   customers = {}
   for i = 2, #ids do customers[#customers + 1] = ids[i] end
   ncust = #customers
   prefix = run_id .. "-" .. tid .. "-"
   seq = 0
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Token " .. token,
   }
   math.randomseed(os.time() + 7919 * tid + #run_id * 104729 + math.floor(os.clock() * 1e6))
   n2xx, n200, n201, n409, n422, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0, 0, 0
   replay_ok, replay_bad, samples = 0, 0, 0
end

function request()
   seq = seq + 1
   local key = prefix .. seq
   local payouts = {}
   for i = 1, size do
      payouts[i] = string.format(
         '{"destinationWalletId":"%s","amount":%d.%02d,"idempotencyKey":"%s-%d"}',
         customers[math.random(ncust)], math.random(0, 9), math.random(1, 99), key, i)
   end
   local body = '{"sourceWalletId":"' .. pool .. '","atomic":false,"transfers":[' ..
      table.concat(payouts, ",") .. ']}'
   headers["Idempotency-Key"] = key
   return wrk.format("POST", "/api/transfers/batch", headers, body)
end

function response(status, hdrs, body)
   if status >= 200 and status < 300 then
      n2xx = n2xx + 1
      if status == 200 then n200 = n200 + 1 elseif status == 201 then n201 = n201 + 1 end
   elseif status >= 500 then
      n5xx = n5xx + 1
   elseif status == 409 then
      n409 = n409 + 1
   elseif status == 422 then
      n422 = n422 + 1
   elseif status >= 400 then
      n4xx = n4xx + 1
   else
      nother = nother + 1
   end
   -- A batch answered 201 whose payouts did not all complete would not be
   -- SIZE payouts moved: count it as unexpected.
   local partial = status == 201 and string.find(body or "", '"status":"PARTIALLY_COMPLETED"', 1, true)
   if partial then replay_bad = replay_bad + 1 end
   if (status ~= 201 or partial) and samples < 3 then
      samples = samples + 1
      io.stderr:write(string.format("unexpected %d: %s\n", status, string.sub(body or "", 1, 300)))
   end
end

function done(summary, latency, requests)
   local c = {n2xx = 0, n200 = 0, n201 = 0, n409 = 0, n422 = 0, n4xx = 0, n5xx = 0, nother = 0,
              replay_ok = 0, replay_bad = 0}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(c) do
         c[name] = c[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, ' ..
      '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "non_2xx_3xx": %d, ' ..
      '"status": {"2xx": %d, "200": %d, "201": %d, "409": %d, "422": %d, "4xx_other": %d, "5xx": %d, "other": %d}, ' ..
      '"replay_ok": %d, "replay_bad": %d, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
      c.n2xx, c.n200, c.n201, c.n409, c.n422, c.n4xx, c.n5xx, c.nother, c.replay_ok, c.replay_bad,
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
