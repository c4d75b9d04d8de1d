--[[ result: write one fenced ResultRecord and announce it when ready.

The stored value is the msgspec JSON of celeriac.message.ResultRecord, read back as is.
Its fencing token is read from the JSON tail: fencing_token is the struct's last field
(omitted when 0), so a top-level token always ends the text as `"fencing_token":N}`;
the state is the second field, right after task_id, so the first `"state":"X"` is
the top-level one (quotes inside strings are escaped). tests/brokers/test_redis.py pins
that field order.

write_result returns 1 when written, 0 when refused: a newer delivery's record is there,
or the same delivery's finished record would be replaced by an unfinished state (a late
STARTED write must not hide the result).
]]
local READY_STATES = {SUCCESS = true, FAILURE = true, REVOKED = true}

local function write_result(key, token, is_ready, record, expires_ms, channel)
  local current = redis.call('GET', key)
  if current then
    local current_token = tonumber(string.match(current, '"fencing_token":(%d+)}$')) or 0
    if token < current_token then return 0 end
    if token == current_token and not is_ready then
      local state = string.match(current, '"state":"(%u+)"')
      if READY_STATES[state] then return 0 end
    end
  end
  if expires_ms > 0 then
    redis.call('SET', key, record, 'PX', expires_ms)
  else
    redis.call('SET', key, record)
  end
  if is_ready then redis.call('PUBLISH', channel, '1') end
  return 1
end
