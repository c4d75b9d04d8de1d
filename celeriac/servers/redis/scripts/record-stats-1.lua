--[[ record-stats-1: add per-minute aggregates, and append events, in one call.

KEYS: the events stream, then one stats hash per minute written ({P}:stats:<minute>)
ARGV:
  1  the event log's cap (events kept)
  2  how many events follow, n
  3 .. n + 2  the events, one body each
  n + 3  how long a stats hash is kept after this write, ms
  then 3 per number: the index of its hash in KEYS (2 ..), its field
  ("<name>\0<queue>\0<metric>", celeriac/stats.py), the number to add
Returns the number of stats fields written.

A worker's flush sends its events and its counts since the last flush here together, so
the aggregates cost no round trip of their own. Each hash expires KEEP_MINUTES after its
last write; the stream is trimmed exactly, as emit-events does.
]]
local n_events = tonumber(ARGV[2])
for i = 3, n_events + 2 do
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
end
if n_events > 0 then redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1])) end
local keep_ms = ARGV[n_events + 3]
local touched = {}
local written = 0
for i = n_events + 4, #ARGV, 3 do
  local k = tonumber(ARGV[i])
  redis.call('HINCRBYFLOAT', KEYS[k], ARGV[i + 1], ARGV[i + 2])
  touched[k] = true
  written = written + 1
end
for k in pairs(touched) do redis.call('PEXPIRE', KEYS[k], keep_ms) end
return written
