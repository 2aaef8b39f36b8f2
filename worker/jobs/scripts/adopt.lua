-- Adopt a remote job for a local record that never learned its id (the start's answer
-- was lost, or the request came again after the job store lost its data): it becomes
-- running, takes a slot (it is active remotely) and is polled at once.
-- Returns 1 if adopted.
local job, due, active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local request_id, now = unpack(ARGV, 1, 2)
-- ARGV[3..]: field/value pairs
-- include: moves

if (redis.call('HGET', job, 'batch_evaluation_id') or '') ~= '' then return 0 end
if not move(request_id, job, 'adopt', {unpack(ARGV, 3)}) then return 0 end
redis.call('ZADD', due, now, request_id)
return 1
