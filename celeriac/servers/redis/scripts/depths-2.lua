--[[ depths-2: queued plus scheduled messages per queue.

KEYS, 2 per queue: ready, scheduled
ARGV: none
Returns one count per queue, in KEYS order. Read-only.
]]
local reply = {}
for g = 1, #KEYS / 2 do
  reply[g] = redis.call('ZCARD', KEYS[2 * g - 1]) + redis.call('ZCARD', KEYS[2 * g])
end
return reply
