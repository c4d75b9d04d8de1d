--[[ queue-stats-5: each queue's counts, the due time of its oldest queued message, its
dead letters and its lease counters, in one consistent read.

KEYS, 5 per queue: ready, scheduled, leases, dead-letters, counters
ARGV: none
Returns 7 per queue, in KEYS order: queued, scheduled, leased, the oldest queued message's
due time in ms (-1: none), dead letters, leases run out, of those put back.

Queued counts the ready set plus the scheduled messages already due (a reserve moves them
to ready). A ready score holds the message's sequence number (ready.lua), which is never
behind the server's clock when the message became ready: the smallest one among
published, promoted and reclaimed messages (the upper half of each priority band) is the
oldest, read as a time; a due scheduled message counts from its eta. Released messages
(the lower half of a band) are left out. Read-only.
]]
--- @include "clock"
--- @include "ready"

local now_ms = server_clock()
local reply = {}
for g = 1, #KEYS / 5 do
  local base = 5 * (g - 1)
  local ready, scheduled, leases = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local due = redis.call('ZCOUNT', scheduled, '-inf', now_ms)
  local oldest = -1
  for band = 0, 9 do
    local low = band * PRIORITY_BAND + HEAD_OFFSET
    local first = redis.call('ZRANGEBYSCORE', ready, string.format('%.0f', low),
                             '(' .. string.format('%.0f', (band + 1) * PRIORITY_BAND), 'WITHSCORES', 'LIMIT', 0, 1)
    if first[2] then
      local at = SEQ_EPOCH_S * 1000 + math.floor((tonumber(first[2]) - low) / 100)
      if oldest < 0 or at < oldest then oldest = at end
    end
  end
  if due > 0 then
    local eta = tonumber(redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')[2])
    if oldest < 0 or eta < oldest then oldest = eta end
  end
  local counters = redis.call('HMGET', KEYS[base + 5], 'expired', 'reclaimed')
  local n = #reply
  reply[n + 1] = redis.call('ZCARD', ready) + due
  reply[n + 2] = redis.call('ZCARD', scheduled) - due
  reply[n + 3] = redis.call('ZCARD', leases)
  reply[n + 4] = oldest
  reply[n + 5] = redis.call('HLEN', KEYS[base + 4])
  reply[n + 6] = tonumber(counters[1] or '0')
  reply[n + 7] = tonumber(counters[2] or '0')
end
return reply
