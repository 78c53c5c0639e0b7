-- wrk script for bench/webhooks_load.py: cycles through deliveries signed before the run.
-- Usage: wrk -t T -c C -d Ds -s webhooks_wrk.lua URL -- <file> T
-- The file has one delivery a line: webhook-id TAB webhook-timestamp TAB webhook-signature TAB body.
-- Each wrk thread takes every T-th line, so no two threads send the same delivery (the file's own
-- repeats are the benchmark's duplicates). A thread that runs out starts again from its first line
-- and counts the wrap, so the caller can tell the duplicate share was exceeded.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local reqs, n, i = {}, 0, 0

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  local k = 0
  for line in io.lines(path) do
    if k % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      n = n + 1
      reqs[n] = wrk.format("POST", wrk.path, {
        ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig,
        ["Content-Type"] = "application/json"}, body)
    end
    k = k + 1
  end
  c200, c202, cother, wrapped = 0, 0, 0, 0
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

function response(status, headers, body)
  if status == 202 then
    c202 = c202 + 1
  elseif status == 200 then
    c200 = c200 + 1
  else
    cother = cother + 1
  end
end

function done(summary, latency, requests)
  local a, b, o, w = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("c200")
    b = b + t:get("c202")
    o = o + t:get("cother")
    w = w + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'CBJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"c200": %d, "c202": %d, "other": %d, "wrapped": %d, "socket_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    a, b, o, w, e.connect + e.read + e.write, e.timeout))
end
