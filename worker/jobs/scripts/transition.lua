-- Move a job by a named move if the move starts from its state (and, when `expected`
-- is not '', that state is `expected`): a compare-and-set, so racing deliveries cannot
-- move a job twice. Writes the field/value pairs with the new state, and sets (a
-- number), keeps ('') or clears ('-') the job's timer.
-- Returns {1 if moved else 0, the state before ('' if there is no record), 1 if the move
-- freed what admission waits on (a slot, or an evaluator a rollout drained) else 0}.
local job, due, active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local request_id, move_name, expected, due_at = unpack(ARGV, 1, 4)
-- ARGV[5..]: field/value pairs
-- include: moves

if redis.call('EXISTS', job) == 0 then return {0, '', 0} end  -- records are made by register
local before = move(request_id, job, move_name, {unpack(ARGV, 5)}, expected)
if not before then return {0, redis.call('HGET', job, 'state') or '', 0} end
if due_at == '-' then
  redis.call('ZREM', due, request_id)
elseif due_at ~= '' then
  redis.call('ZADD', due, due_at, request_id)
end
-- A step set the timer: its next hand-out gets the plain lease again (claim_due.lua).
if due_at ~= '' then redis.call('HDEL', job, 'claims') end
local after = target(move_name, before)
local freed = (is('slot', before) and not is('slot', after))
  or (is('draining', before) and not is('draining', after))
return {1, before, freed and 1 or 0}
