-- wrk script for bench/run: the request stays wrk's static one (no request()
-- or response() hook, so wrk keeps its fast path); done() prints the exact
-- totals as one JSON line, which bench/run parses instead of wrk's rounded,
-- human-unit summary ("1.09GB read").

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "bytes": %d, "duration_us": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, ' ..
      '"p50_us": %d, "p99_us": %d}\n',
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(99)))
end
