-- A request whose scenario sessions are ready enters the backlog: at the back of its
-- producer's backlog, as a new request would, its producer taking a turn in the current
-- round when it had none. Writes the field/value pairs; its timer goes (a queued job
-- waits for admission, not for a timer).
-- Returns 1 if it moved.
local job, due, backlog, backlog_turns, backlog_rounds,
      active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local request_id, producer = unpack(ARGV, 1, 2)
-- ARGV[3..]: field/value pairs
-- include: moves

if not move(request_id, job, 'enqueue', {unpack(ARGV, 3)}) then return 0 end
redis.call('ZREM', due, request_id)
if redis.call('RPUSH', backlog, request_id) == 1 then
  local round = redis.call('HGET', backlog_rounds, redis.call('HGET', job, 'priority') or '0')
  redis.call('ZADD', backlog_turns, 'NX', round or 0, producer)
end
return 1
