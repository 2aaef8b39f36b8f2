-- A pending slot was handed to intake: forget it, record it as the schedule's last slot
-- (unless a later one settled first) and count it submitted, once. Returns 1 if this call
-- settled it.
local schedule, schedule_pending, metrics_schedule_slots = unpack(KEYS)
local slot, request_id, job_id, outcome, submitted_field = unpack(ARGV)

if redis.call('HDEL', schedule_pending, slot) == 0 then
  return 0
end
if tonumber(slot) > tonumber(redis.call('HGET', schedule, 'last_slot') or '-1') then
  redis.call('HSET', schedule, 'last_slot', slot, 'last_request_id', request_id,
             'last_job_id', job_id, 'last_outcome', outcome)
end
if redis.call('EXISTS', schedule_pending) == 0 then
  redis.call('HDEL', schedule, 'pending_at')
end
redis.call('HINCRBY', metrics_schedule_slots, submitted_field, 1)
return 1
