-- wrk script for bench-partial: each request carries one of USERS users'
-- keys (/api/data?user=000 to 999, in a fixed order), so the hash strategy spreads
-- them as it would real users; the end-of-run summary is report.lua's.
-- The requests are formatted once, in init, so the per-request cost is an
-- index, not string building.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

local USERS = 1000
local requests = {}
local n = 0

init = function(args)
  for i = 1, USERS do
    requests[i] = wrk.format("GET", wrk.path .. string.format("?user=%03d", i - 1))
  end
end

request = function()
  n = n % USERS + 1
  return requests[n]
end
