-- Put an admitted job back at the front of its producer's backlog and pause admission
-- (the account said it is full); the producer gets its turn back (the current round).
-- Returns 1 if the job was requeued.
local job, due, backlog, backlog_turns, backlog_rounds, admission_paused_until,
      active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local request_id, producer, now, pause_until = unpack(ARGV)
-- include: moves

if not move(request_id, job, 'requeue', {'updated_at', now}) then return 0 end
redis.call('ZREM', due, request_id)
redis.call('LPUSH', backlog, request_id)
local round = redis.call('HGET', backlog_rounds, redis.call('HGET', job, 'priority') or '0')
redis.call('ZADD', backlog_turns, 'LT', round or 0, producer)
local paused = tonumber(redis.call('GET', admission_paused_until) or '0')
if tonumber(pause_until) > paused then redis.call('SET', admission_paused_until, pause_until) end
return 1
