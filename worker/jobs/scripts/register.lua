-- Register a request once. The same payload again changes nothing, except that a
-- dead-lettered record comes back (a replay): a request to the backlog, one that died
-- while running its scenario items to its items, a rollout to its drain. Another payload
-- is a conflict. A new request goes to the backlog by the move `first` names: create;
-- with scenarios, prepare (its items run first); a rollout, roll_out. A record that does
-- not wait in the backlog gets a timer due now (its step starts at once). A producer that
-- had nothing waiting at this priority takes its turn in the current round.
-- Returns {created | requeued | duplicate | conflict, the job's state}, and counts that
-- outcome in the metrics hash (metric_labels: "backend|target").
local job, jobs_by_time, backlog, backlog_turns, backlog_rounds, remote_names, due,
      active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, metrics_requests = unpack(KEYS)
local request_id, payload_hash, producer, now, first, metric_labels = unpack(ARGV, 1, 6)
-- ARGV[7..]: field/value pairs of a new record
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
  local kind = redis.call('HGET', job, 'kind') or ''
  local unprepared = (redis.call('HGET', job, 'scenario_items') or '') ~= ''
    and (redis.call('HGET', job, 'prepared_at') or '') == ''
  local before
  if kind == 'rollout' then
    before = move(request_id, job, 'replay_rollout', fields)
  elseif unprepared then
    before = move(request_id, job, 'replay_scenarios', fields)
  else
    before = move(request_id, job, 'replay', fields)
  end
  if not before then return {counted('duplicate'), state} end
  redis.call('HINCRBY', job, 'replays', 1)
  outcome = 'requeued'
else
  if first == 'prepare' then
    move(request_id, job, 'prepare', {unpack(ARGV, 7)})
  elseif first == 'roll_out' then
    move(request_id, job, 'roll_out', {unpack(ARGV, 7)})
  else
    move(request_id, job, 'create', {unpack(ARGV, 7)})
  end
  redis.call('ZADD', jobs_by_time, now, request_id)
  local name = redis.call('HGET', job, 'remote_name')
  if name and name ~= '' then redis.call('HSET', remote_names, name, request_id) end
end
local state = redis.call('HGET', job, 'state')
if not is('backlog', state) then
  redis.call('ZADD', due, now, request_id)
elseif redis.call('RPUSH', backlog, request_id) == 1 then
  local round = redis.call('HGET', backlog_rounds, redis.call('HGET', job, 'priority') or '0')
  redis.call('ZADD', backlog_turns, 'NX', round or 0, producer)
end
return {counted(outcome), state}
