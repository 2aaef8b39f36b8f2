-- Moves along the state table (worker/jobs/states.py, rendered in: target() and is())
-- and the indexes that follow from a job's state: the slot set, the backlog's deadline
-- index, the indexes of published jobs and of dead ones, and the evaluators rollouts
-- drain. The only code that writes a job's state.
-- needs: active, queued_by_deadline, published_by_time, retained_by_time, draining_evaluators
-- needs: dead_jobs
-- include: state_table

-- Keep the indexes that follow from a job's state as it goes from `before` to `after`.
local function follow(id, job, before, after)
  if is('slot', after) and not is('slot', before) then redis.call('SADD', active, id) end
  if is('slot', before) and not is('slot', after) then redis.call('SREM', active, id) end
  if is('backlog', after) and not is('backlog', before) then
    redis.call('ZADD', queued_by_deadline, redis.call('HGET', job, 'deadline_at'), id)
  elseif is('backlog', before) and not is('backlog', after) then
    redis.call('ZREM', queued_by_deadline, id)
  end
  if is('retained', after) then
    local at = tonumber(redis.call('HGET', job, 'published_at'))
      or tonumber(redis.call('HGET', job, 'updated_at')) or 0
    redis.call('ZADD', published_by_time, at, id)
    if (redis.call('HGET', job, 'batch_evaluation_id') or '') ~= '' then
      redis.call('ZADD', retained_by_time, at, id)
    end
  elseif is('retained', before) then
    redis.call('ZREM', retained_by_time, id)
  end
  if is('dead', after) and not is('dead', before) then
    redis.call('ZADD', dead_jobs, tonumber(redis.call('HGET', job, 'updated_at')) or 0, id)
  elseif is('dead', before) and not is('dead', after) then
    redis.call('ZREM', dead_jobs, id)
  end
  -- A rollout with drain holds its evaluator from admission until its outcome is known.
  local draining_before, draining_after = is('draining', before), is('draining', after)
  if draining_before ~= draining_after then
    local evaluator = redis.call('HGET', job, 'drain_evaluator') or ''
    if evaluator ~= '' and draining_after then
      redis.call('HINCRBY', draining_evaluators, evaluator, 1)
    elseif evaluator ~= '' and redis.call('HINCRBY', draining_evaluators, evaluator, -1) <= 0 then
      redis.call('HDEL', draining_evaluators, evaluator)
    end
  end
end

-- Move job `id` (hash `job`) by the move `name`, writing `fields` (a flat list of
-- field/value pairs) with its new state, if the move starts from the job's state and,
-- when `expected` is given and not '', that state is `expected` (compare-and-set).
-- Returns the state before ('' for a new record), or nil when the move does not apply.
local function move(id, job, name, fields, expected)
  local before = redis.call('HGET', job, 'state') or ''
  local after = target(name, before)
  if not after or (expected and expected ~= '' and before ~= expected) then return nil end
  redis.call('HSET', job, 'state', after, unpack(fields))
  follow(id, job, before, after)
  return before
end
