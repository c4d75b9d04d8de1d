--[[ emit-events-1: append events to the capped event log.

KEYS: the events stream
ARGV: 1 the cap (events kept), then one event body per argument
Returns the id of the last event added.

Trimmed once per call, exactly (MAXLEN without ~), because approximate trimming only drops
whole stream nodes and could keep far more than the cap on a small log.
]]
local last_id = false
for i = 2, #ARGV do
  last_id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1]))
return last_id
