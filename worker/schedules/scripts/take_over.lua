-- Take over a schedule's pending slots whose claim the caller found older than the lease
-- (the run that claimed them died before it handed them all to intake): one taker only.
-- Returns 1 if this call took them.
local schedule, schedule_pending = unpack(KEYS)
local seen, now = unpack(ARGV)

if (redis.call('HGET', schedule, 'pending_at') or '') ~= seen then
  return 0
end
if redis.call('EXISTS', schedule_pending) == 0 then
  redis.call('HDEL', schedule, 'pending_at')
  return 0
end
redis.call('HSET', schedule, 'pending_at', now)
return 1
