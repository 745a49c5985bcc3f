-- HTTP/1.1 pipelining for wrk: each write sends DEPTH requests back to back.
--
--   wrk -s bench/pipeline.lua http://127.0.0.1:PORT/1k.bin -- 8
--
-- wrk calls request() once when the script loads, parses the returned buffer to
-- count the requests in it, and writes the next batch only after that many
-- responses have been parsed. Every parsed response is counted, so wrk's
-- Requests/sec is responses/sec. Headers given with -H are part of wrk.format().

local batch

function init(args)
   local depth = tonumber(args[1]) or 8
   batch = string.rep(wrk.format(nil, nil), depth)
end

function request()
   return batch
end

-- Share report.lua's done() (the exact-totals line) rather than copying it.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
