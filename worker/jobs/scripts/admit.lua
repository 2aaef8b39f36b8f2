-- Admit queued jobs while the account has free slots (docs/throughput.md, "Fair
-- admission"): the highest priority with requests waiting goes first; within it, the
-- producer whose turn has the lowest round (ties: by name) gives its oldest request and
-- takes its next turn one round later, so one producer's burst cannot starve another.
-- A producer keeps that next turn even when it has nothing left waiting (it is dropped
-- when the turn comes up empty), so sending one request at a time gains it nothing.
-- Jobs whose deadline passed in the backlog are expired instead; ids that no longer
-- wait are dropped; jobs that use an evaluator a rollout drains are passed over and held
-- (docs/evaluators.md). None of these spends the producer's turn. Held jobs none of whose
-- evaluators drains any more go back to the front of their producers' backlogs first.
-- Returns {admitted ids, expired ids}.
local active, due, admission_paused_until, backlog_rounds, held,
      queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local now, quota, job_prefix, backlog_prefix, turns_prefix,
      scan_limit, highest_priority = unpack(ARGV)
-- include: expire

local t = tonumber(now)
local admitted, expired = {}, {}
local draining_any = redis.call('HLEN', draining_evaluators) > 0

-- Whether the job uses an evaluator a rollout drains (its `evaluators`: ids, comma-separated).
local function uses_draining(job)
  if not draining_any then return false end
  local uses = redis.call('HGET', job, 'evaluators') or ''
  for evaluator in string.gmatch(uses, '[^,]+') do
    if redis.call('HEXISTS', draining_evaluators, evaluator) == 1 then return true end
  end
  return false
end

-- Held jobs free to go are put back at the front of their backlogs, in the order they
-- were held, their producers' turns in the current round; ids that no longer wait go.
local function release_held()
  local ids = redis.call('LRANGE', held, 0, -1)
  local keep, free = {}, {}
  for _, id in ipairs(ids) do
    local job = job_prefix .. id
    if is('backlog', redis.call('HGET', job, 'state')) then
      if uses_draining(job) then table.insert(keep, id) else table.insert(free, id) end
    end
  end
  if #keep == #ids then return end
  redis.call('DEL', held)
  for _, id in ipairs(keep) do redis.call('RPUSH', held, id) end
  for i = #free, 1, -1 do
    local job = job_prefix .. free[i]
    local priority = redis.call('HGET', job, 'priority') or '0'
    local producer = redis.call('HGET', job, 'producer')
    redis.call('LPUSH', backlog_prefix .. priority .. ':' .. producer, free[i])
    local round = redis.call('HGET', backlog_rounds, priority)
    redis.call('ZADD', turns_prefix .. priority, 'LT', round or 0, producer)
  end
end

if redis.call('LLEN', held) > 0 then release_held() end
if tonumber(redis.call('GET', admission_paused_until) or '0') > t then
  return {admitted, expired}
end
local budget = tonumber(scan_limit)
local function waiting_priority()
  for priority = tonumber(highest_priority), 0, -1 do
    if redis.call('ZCARD', turns_prefix .. priority) > 0 then return priority end
  end
  return nil
end
while budget > 0 and redis.call('SCARD', active) < tonumber(quota) do
  budget = budget - 1
  local priority = waiting_priority()
  if not priority then break end
  local turns = turns_prefix .. priority
  local head = redis.call('ZPOPMIN', turns)
  local producer, round = head[1], tonumber(head[2])
  local backlog = backlog_prefix .. priority .. ':' .. producer
  local id = redis.call('LPOP', backlog)
  local next_round = nil
  if id then
    local job = job_prefix .. id
    if target('admit', redis.call('HGET', job, 'state') or '') then
      if tonumber(redis.call('HGET', job, 'deadline_at')) <= t then
        expire_in_backlog(id, job, now)
        table.insert(expired, id)
      elseif uses_draining(job) then
        redis.call('RPUSH', held, id)
      else
        move(id, job, 'admit', {'admitted_at', now, 'updated_at', now})
        redis.call('ZADD', due, now, id)
        redis.call('HSET', backlog_rounds, priority, round)
        next_round = round + 1
        table.insert(admitted, id)
      end
    end
  end
  if not next_round and redis.call('LLEN', backlog) > 0 then next_round = round end
  if next_round then redis.call('ZADD', turns, next_round, producer) end
end
return {admitted, expired}
