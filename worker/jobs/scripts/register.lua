-- Register a request once. The same payload again changes nothing, except that a
-- dead-lettered record comes back (a replay) to where it died: a request without a
-- remote job to the backlog, one whose remote job exists to it (polled, republished,
-- deleted), one that died running its scenario items to its items, a rollout to its
-- drain or its update. Another payload
-- is a conflict. A new request goes to the backlog by the move `first` names: create;
-- with scenarios, prepare (its items run first); a rollout, roll_out. A record that does
-- not wait in the backlog gets a timer due now (its step starts at once). A producer that
-- had nothing waiting at this priority takes its turn in the current round.
-- Request ids are scoped by producer: a request_id another producer's record holds is
-- registered under the job id "producer/request_id" (as is every later copy of it), so
-- no producer can take another's id (docs/security.md).
-- A producer with backlog_cap requests waiting in this target gets 'quota' (nothing is
-- written). A remote name already mapped to another job keeps its mapping.
-- Returns {created | requeued | duplicate | conflict | quota, the job's state, job id}, and
-- counts that outcome in the metrics hash (metric_labels: "backend|target").
local job, jobs_by_time, backlog, backlog_turns, backlog_rounds, remote_names, due,
      active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs, metrics_requests = unpack(KEYS)
local request_id, payload_hash, producer, now, first, metric_labels, job_prefix,
      scoped_remote_name, backlog_prefix, backlog_cap, highest_priority = unpack(ARGV, 1, 11)
-- ARGV[12..]: field/value pairs of a new record
-- include: moves
local function counted(outcome)
  redis.call('HINCRBY', metrics_requests, outcome .. '|' .. metric_labels, 1)
  return outcome
end

-- Requests of this producer waiting in this target's backlog, at every priority.
local function waiting()
  local n = 0
  for priority = 0, tonumber(highest_priority) do
    n = n + redis.call('LLEN', backlog_prefix .. priority .. ':' .. producer)
  end
  return n
end

local job_id = request_id
local scoped_id = producer .. '/' .. request_id
local scoped_job = job_prefix .. scoped_id
if redis.call('EXISTS', scoped_job) == 1 then
  job_id, job = scoped_id, scoped_job
else
  local owner = redis.call('HGET', job, 'producer')
  if owner and owner ~= producer then job_id, job = scoped_id, scoped_job end
end
local capped = first ~= 'roll_out' and backlog_cap ~= ''

local existing = redis.call('HGET', job, 'payload_hash')
local outcome = 'created'
if existing then
  local state = redis.call('HGET', job, 'state')
  if existing ~= payload_hash then return {counted('conflict'), state, job_id} end
  -- A replay goes back to where the job died (states.REPLAY_MOVES): a job whose remote
  -- job exists resumes, never starts a second one.
  local kind = redis.call('HGET', job, 'kind') or ''
  local unprepared = (redis.call('HGET', job, 'scenario_items') or '') ~= ''
    and (redis.call('HGET', job, 'prepared_at') or '') == ''
  local name = replay_move(redis.call('HGET', job, 'dead_from'))
  if not name then  -- a record from before dead_from: by what it holds
    if kind == 'rollout' then
      name = 'replay_rollout'
    elseif unprepared then
      name = 'replay_scenarios'
    elseif (redis.call('HGET', job, 'batch_evaluation_id') or '') ~= '' then
      name = 'resume'
    else
      name = 'replay'
    end
  end
  local into = target(name, state)
  if into and capped and (is('backlog', into) or is('preparing', into))
      and waiting() >= tonumber(backlog_cap) then
    return {counted('quota'), state, job_id}
  end
  local fields = {'attempts', '0', 'first_error_at', '', 'updated_at', now, 'stalls', '0',
                  'quota_waits', '0'}
  local before = move(job_id, job, name, fields)
  if not before then return {counted('duplicate'), state, job_id} end
  redis.call('HINCRBY', job, 'replays', 1)
  outcome = 'requeued'
else
  if capped and waiting() >= tonumber(backlog_cap) then return {counted('quota'), '', job_id} end
  local fields = {unpack(ARGV, 12)}
  if job_id ~= request_id then
    -- Written last, so they win over the unscoped values in the fields.
    table.insert(fields, 'request_id'); table.insert(fields, job_id)
    table.insert(fields, 'remote_name'); table.insert(fields, scoped_remote_name)
  end
  if first == 'prepare' then
    move(job_id, job, 'prepare', fields)
  elseif first == 'roll_out' then
    move(job_id, job, 'roll_out', fields)
  else
    move(job_id, job, 'create', fields)
  end
  redis.call('ZADD', jobs_by_time, now, job_id)
  local name = redis.call('HGET', job, 'remote_name')
  if name and name ~= '' then redis.call('HSETNX', remote_names, name, job_id) end
end
local state = redis.call('HGET', job, 'state')
if not is('backlog', state) then
  redis.call('ZADD', due, now, job_id)
elseif redis.call('RPUSH', backlog, job_id) == 1 then
  local round = redis.call('HGET', backlog_rounds, redis.call('HGET', job, 'priority') or '0')
  redis.call('ZADD', backlog_turns, 'NX', round or 0, producer)
end
return {counted(outcome), state, job_id}
