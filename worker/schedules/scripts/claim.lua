-- Claim a schedule's due slots once: move its cursor from the value the caller read to the
-- new one, hold the slots to submit as pending (slot start -> request JSON) and count the
-- missed ones, all in one step. Returns 1 if this call claimed them; 0 if another run
-- moved the cursor first or still holds pending slots (two beats, a redelivered task).
local schedule, schedule_pending, metrics_schedule_slots = unpack(KEYS)
local seen, cursor, now, missed, missed_field = unpack(ARGV, 1, 5)  -- ARGV[6..]: slot, request

if (redis.call('HGET', schedule, 'cursor') or '') ~= seen then
  return 0
end
if redis.call('EXISTS', schedule_pending) == 1 then
  return 0
end
redis.call('HSET', schedule, 'cursor', cursor)
if seen == '' then
  redis.call('HSET', schedule, 'since', now)
end
if #ARGV > 5 then
  redis.call('HSET', schedule_pending, unpack(ARGV, 6))
  redis.call('HSET', schedule, 'pending_at', now)
end
if tonumber(missed) > 0 then
  redis.call('HINCRBY', metrics_schedule_slots, missed_field, missed)
end
return 1
