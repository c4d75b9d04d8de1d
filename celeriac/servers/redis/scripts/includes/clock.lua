--[[ clock: the Redis server's time, so every worker measures leases and etas alike.

server_clock() returns now_ms (epoch ms) and now_seq (10 us units since 2024-01-01,
the floor for ready sequence numbers; 2^48 of them last 89 years).
Calling TIME before writing is allowed because Redis 7 replicates script effects.
CLOCK_SKEW_MS moves both forward alike: 0 as shipped, set by connection.py's
load_scripts(skew_ms) only for a client whose clock a test moved on (skew_clock).
]]
local SEQ_EPOCH_S = 1704067200
local CLOCK_SKEW_MS = 0

local function server_clock()
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  return sec * 1000 + math.floor(usec / 1000) + CLOCK_SKEW_MS,
    (sec - SEQ_EPOCH_S) * 100000 + math.floor(usec / 10) + CLOCK_SKEW_MS * 100
end
