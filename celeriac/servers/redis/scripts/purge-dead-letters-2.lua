--[[ purge-dead-letters-2: drop every dead letter.

KEYS, 2 per queue: dead, dead-letters
ARGV: none
Returns how many were dropped (every dead letter counts, including several of one task
id). Atomic as a script.
]]
local total = 0
for g = 1, #KEYS / 2 do
  total = total + redis.call('HLEN', KEYS[2 * g])
  redis.call('DEL', KEYS[2 * g - 1], KEYS[2 * g])
end
return total
