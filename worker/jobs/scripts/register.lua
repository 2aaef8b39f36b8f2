-- Register a request once. The same payload again changes nothing, except that a
-- dead-lettered job goes back on the backlog (a replay); another payload is a conflict.
-- A producer that had nothing waiting at this priority takes its turn in the current
-- round. Returns {created | requeued | duplicate | conflict, the job's state}, and
-- counts that outcome in the metrics hash (metric_labels: "backend|target").
local job, jobs_by_time, backlog, backlog_turns, backlog_rounds, remote_names,
      active, queued_by_deadline, published_by_time, retained_by_time,
      metrics_requests = unpack(KEYS)
local request_id, payload_hash, producer, now, metric_labels = unpack(ARGV, 1, 5)
-- ARGV[6..]: field/value pairs of a new record
-- include: moves
local function counted(outcome)
  redis.call('HINCRBY', metrics_requests, outcome .. '|' .. metric_labels, 1)
  return outcome
end

local existing = redis.call('HGET', job, 'payload_hash')
local outcome = 'created'
if existing then
  local state = redis.call('HGET', job, 'state')
  if existing ~= payload_hash then return {counted('conflict'), state} end
  local fields = {'attempts', '0', 'first_error_at', '', 'updated_at', now}
  if not move(request_id, job, 'replay', fields) then return {counted('duplicate'), state} end
  redis.call('HINCRBY', job, 'replays', 1)
  outcome = 'requeued'
else
  move(request_id, job, 'create', {unpack(ARGV, 6)})
  redis.call('ZADD', jobs_by_time, now, request_id)
  local name = redis.call('HGET', job, 'remote_name')
  if name and name ~= '' then redis.call('HSET', remote_names, name, request_id) end
end
if redis.call('RPUSH', backlog, request_id) == 1 then
  local round = redis.call('HGET', backlog_rounds, redis.call('HGET', job, 'priority') or '0')
  redis.call('ZADD', backlog_turns, 'NX', round or 0, producer)
end
return {counted(outcome), redis.call('HGET', job, 'state')}
