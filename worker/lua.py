"""Lua scripts for the moves that must be atomic across every worker process.

Key names are computed in ``worker.keys`` and passed in; scripts that must reach a key
chosen at run time (a job picked from a backlog) get that key's prefix as an argument.
"""

#: Register a request once. Same payload hash: nothing happens (a dead-lettered job is
#: put back on the backlog: that is a replay). Other payload hash: conflict. A producer
#: that had nothing waiting at this priority takes its turn in the current round.
#: KEYS: job, jobs_by_time, backlog (producer, priority), backlog_turns (priority),
#: queued_by_deadline, backlog_rounds, remote_names. ARGV: payload_hash, now, request_id,
#: producer, field/value pairs of a new record...
REGISTER = """
local existing = redis.call('HGET', KEYS[1], 'payload_hash')
local outcome = 'created'
if existing then
  local state = redis.call('HGET', KEYS[1], 'state')
  if existing ~= ARGV[1] then return {'conflict', state} end
  if state ~= 'DEAD' then return {'duplicate', state} end
  redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'attempts', '0', 'first_error_at', '',
             'updated_at', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'replays', 1)
  outcome = 'requeued'
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  local name = redis.call('HGET', KEYS[1], 'remote_name')
  if name and name ~= '' then redis.call('HSET', KEYS[7], name, ARGV[3]) end
end
if redis.call('RPUSH', KEYS[3], ARGV[3]) == 1 then
  local round = redis.call('HGET', KEYS[6], redis.call('HGET', KEYS[1], 'priority') or '0')
  redis.call('ZADD', KEYS[4], 'NX', round or 0, ARGV[4])
end
redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], 'deadline_at'), ARGV[3])
return {outcome, 'QUEUED'}
"""

#: Admit queued jobs while the account has free slots (docs/throughput.md, "Fair
#: admission"): the highest priority with requests waiting goes first; within it, the
#: producer whose turn has the lowest round (ties: by name) gives its oldest request and
#: takes its next turn one round later, so one producer's burst cannot starve another.
#: A producer keeps that next turn even when it has nothing left waiting (it is dropped
#: when the turn comes up empty), so sending one request at a time gains it nothing.
#: Jobs whose deadline passed in the backlog are finished as EXPIRED instead; ids that are
#: no longer QUEUED are dropped. Neither spends the producer's turn.
#: Returns {admitted ids, expired ids}.
#: KEYS: active, backlog_rounds, due, paused_until, queued_by_deadline.
#: ARGV: now, quota, job key prefix, backlog key prefix, most entries to look at,
#: backlog_turns key prefix, highest priority.
ADMIT = """
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[4]) or '0')
local admitted, expired = {}, {}
if paused > now then return {admitted, expired} end
local budget = tonumber(ARGV[5])
local function waiting_priority()
  for priority = tonumber(ARGV[7]), 0, -1 do
    if redis.call('ZCARD', ARGV[6] .. priority) > 0 then return priority end
  end
  return nil
end
while budget > 0 and redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) do
  budget = budget - 1
  local priority = waiting_priority()
  if not priority then break end
  local turns = ARGV[6] .. priority
  local head = redis.call('ZPOPMIN', turns)
  local producer, round = head[1], tonumber(head[2])
  local backlog = ARGV[4] .. priority .. ':' .. producer
  local id = redis.call('LPOP', backlog)
  local next_round = nil
  if id then
    local job = ARGV[3] .. id
    if redis.call('HGET', job, 'state') == 'QUEUED' then
      redis.call('ZREM', KEYS[5], id)
      if tonumber(redis.call('HGET', job, 'deadline_at')) <= now then
        redis.call('HSET', job, 'state', 'FINISHED', 'outcome_status', 'EXPIRED',
                   'finished_at', ARGV[1], 'updated_at', ARGV[1],
                   'error', 'deadline passed while the request waited in the backlog')
        redis.call('ZADD', KEYS[3], now, id)
        table.insert(expired, id)
      else
        redis.call('SADD', KEYS[1], id)
        redis.call('HSET', job, 'state', 'ADMITTED', 'admitted_at', ARGV[1],
                   'updated_at', ARGV[1])
        redis.call('ZADD', KEYS[3], now, id)
        redis.call('HSET', KEYS[2], priority, round)
        next_round = round + 1
        table.insert(admitted, id)
      end
    end
  end
  if not next_round and redis.call('LLEN', backlog) > 0 then next_round = round end
  if next_round then redis.call('ZADD', turns, next_round, producer) end
end
return {admitted, expired}
"""

#: Move a job to a new state if it is in one of the expected states (compare-and-set),
#: keeping the janitor's indexes: leaving QUEUED leaves the deadline index; entering
#: PUBLISHED enters the record-retention index (and, with a remote job, the index of
#: remote jobs kept for their retention), entering DELETED leaves the latter.
#: KEYS: job, due, active, queued_by_deadline, published_by_time, retained_by_time.
#: ARGV: request_id, expected states (comma-separated), new state, due score ('' keep,
#: '-' remove), release slot ('1'/'0'), field/value pairs...
#: Returns {1 if moved else 0, state before}.
TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, ''} end
local expected = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == state then expected = true end
end
if not expected then return {0, state} end
redis.call('HSET', KEYS[1], 'state', ARGV[3], unpack(ARGV, 6))
if ARGV[4] == '-' then
  redis.call('ZREM', KEYS[2], ARGV[1])
elseif ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
if ARGV[5] == '1' then redis.call('SREM', KEYS[3], ARGV[1]) end
if state == 'QUEUED' and ARGV[3] ~= 'QUEUED' then redis.call('ZREM', KEYS[4], ARGV[1]) end
if ARGV[3] == 'PUBLISHED' then
  local at = tonumber(redis.call('HGET', KEYS[1], 'published_at'))
    or tonumber(redis.call('HGET', KEYS[1], 'updated_at')) or 0
  redis.call('ZADD', KEYS[5], at, ARGV[1])
  if (redis.call('HGET', KEYS[1], 'batch_evaluation_id') or '') ~= '' then
    redis.call('ZADD', KEYS[6], at, ARGV[1])
  end
elseif ARGV[3] == 'DELETED' then
  redis.call('ZREM', KEYS[6], ARGV[1])
end
return {1, state}
"""

#: Put an admitted job back at the front of its producer's backlog and pause admission
#: (the account said it is full); the producer gets its turn back (the current round).
#: KEYS: job, due, active, backlog (producer, priority), backlog_turns (priority),
#: paused_until, queued_by_deadline, backlog_rounds.
#: ARGV: request_id, producer, now, pause until.
REQUEUE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'ADMITTED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'updated_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('LPUSH', KEYS[4], ARGV[1])
local round = redis.call('HGET', KEYS[8], redis.call('HGET', KEYS[1], 'priority') or '0')
redis.call('ZADD', KEYS[5], 'LT', round or 0, ARGV[2])
local paused = tonumber(redis.call('GET', KEYS[6]) or '0')
if tonumber(ARGV[4]) > paused then redis.call('SET', KEYS[6], ARGV[4]) end
redis.call('ZADD', KEYS[7], redis.call('HGET', KEYS[1], 'deadline_at'), ARGV[1])
return 1
"""

#: Hand out timers due before now + horizon, leasing each: its score moves to due + lease,
#: so a timer whose task was lost (killed worker) comes due again.
#: KEYS: due. ARGV: now, horizon, lease, limit.
#: Returns [id, due, lease score, id, due, lease score, ...] (numbers as strings).
CLAIM_DUE = """
local now = tonumber(ARGV[1])
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + tonumber(ARGV[2]),
                         'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
local claimed = {}
for i = 1, #items, 2 do
  local leased = math.max(tonumber(items[i + 1]), now) + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], leased, items[i])
  table.insert(claimed, items[i])
  table.insert(claimed, items[i + 1])
  table.insert(claimed, tostring(leased))
end
return claimed
"""

#: Drop dead letters: every entry scored at or before a cutoff, then the oldest beyond a
#: count, with their documents and replay marks, in one round trip.
#: KEYS: dead-letter index (sorted set), replaying (hash).
#: ARGV: entry key prefix, cutoff score ('' none), entries to keep (-1 no cap).
#: Returns how many entries were dropped.
TRIM_DEAD_LETTERS = """
local dropped = 0
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('DEL', ARGV[1] .. id)
    redis.call('HDEL', KEYS[2], id)
  end
  dropped = dropped + #ids
end
if ARGV[2] ~= '' then
  drop(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2]))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
end
local keep = tonumber(ARGV[3])
if keep >= 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - keep
  if excess > 0 then
    drop(redis.call('ZRANGE', KEYS[1], 0, excess - 1))
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  end
end
return dropped
"""

#: Settle a replay once: clear the entry's replay mark if it still holds this token.
#: KEYS: replaying (hash). ARGV: dead_letter_id, token. Returns 1 if this call settled it.
CLAIM_REPLAY = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

#: Expire queued requests whose deadline passed: each is FINISHED as EXPIRED with its
#: timer due now (the publish step follows), as ADMIT does when it meets one. Its id stays
#: in the producer's backlog list; ADMIT skips ids that are no longer QUEUED.
#: KEYS: queued_by_deadline, due. ARGV: now, job key prefix, request_ids...
#: Returns the expired ids.
EXPIRE_QUEUED = """
local expired = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local job = ARGV[2] .. id
  local state = redis.call('HGET', job, 'state')
  if state == 'QUEUED' then
    if tonumber(redis.call('HGET', job, 'deadline_at')) <= tonumber(ARGV[1]) then
      redis.call('HSET', job, 'state', 'FINISHED', 'outcome_status', 'EXPIRED',
                 'finished_at', ARGV[1], 'updated_at', ARGV[1],
                 'error', 'deadline passed while the request waited in the backlog')
      redis.call('ZADD', KEYS[2], ARGV[1], id)
      redis.call('ZREM', KEYS[1], id)
      table.insert(expired, id)
    end
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return expired
"""

#: Repair the slot set: a member that no longer holds a slot (its state left ADMITTED,
#: RUNNING and STOPPING without releasing it) is released; a member without a timer gets
#: one due now, so its next step (a poll, or the stop at its deadline) runs.
#: KEYS: active, due. ARGV: now, job key prefix, request_ids...
#: Returns {rearmed ids, released ids}.
REPAIR_SLOTS = """
local rearmed, released = {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[1], id) == 1 then
    local state = redis.call('HGET', ARGV[2] .. id, 'state')
    if state == 'ADMITTED' or state == 'RUNNING' or state == 'STOPPING' then
      if not redis.call('ZSCORE', KEYS[2], id) then
        redis.call('ZADD', KEYS[2], ARGV[1], id)
        table.insert(rearmed, id)
      end
    else
      redis.call('SREM', KEYS[1], id)
      table.insert(released, id)
    end
  end
end
return {rearmed, released}
"""

#: Trim local records whose retention (counted from publication) ended. A record whose
#: remote job is still kept (retention longer than the record's) is looked at again once
#: that remote retention ends.
#: KEYS: published_by_time, jobs_by_time, due, remote_names.
#: ARGV: cutoff, job key prefix, request_ids...
#: Returns the trimmed ids.
TRIM_RECORDS = """
local trimmed = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local job = ARGV[2] .. id
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    local state = redis.call('HGET', job, 'state')
    local remote = redis.call('HGET', job, 'batch_evaluation_id') or ''
    if state == 'PUBLISHED' and remote ~= '' then
      local published = tonumber(redis.call('HGET', job, 'published_at')) or tonumber(score)
      local retention = tonumber(redis.call('HGET', job, 'retention_seconds')) or 0
      redis.call('ZADD', KEYS[1], published + retention, id)
    elseif state == 'PUBLISHED' or state == 'DELETED' or not state then
      local name = redis.call('HGET', job, 'remote_name')
      if name and name ~= '' then redis.call('HDEL', KEYS[4], name) end
      redis.call('DEL', job)
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      table.insert(trimmed, id)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return trimmed
"""

#: Adopt a remote job for a local record that never learned its id (the start's answer
#: was lost, or the request came again after the job store lost its data): the job
#: becomes RUNNING, takes a slot (it is active remotely) and is polled at once.
#: KEYS: job, due, active, queued_by_deadline. ARGV: request_id, now, field/value pairs...
#: Returns 1 if adopted.
ADOPT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'QUEUED' and state ~= 'ADMITTED' and state ~= 'DEAD' then return 0 end
if (redis.call('HGET', KEYS[1], 'batch_evaluation_id') or '') ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', unpack(ARGV, 3))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

#: Take one call from a shared rate limit: a sliding log of the last ``calls`` calls (as
#: the ``limits`` library's moving window), with a window in fractions of a second and
#: Redis's own clock, so every host counts time alike (``worker.ratelimit`` says why).
#: KEYS: log (list of call times, newest first). ARGV: calls per window, window seconds,
#: now ('' for Redis's clock). Returns '0' when the call may go now (it is counted), else
#: the seconds until it may, as a string.
RATE_LIMIT = """
local now = tonumber(ARGV[3])
if not now then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end
local calls, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest = tonumber(redis.call('LINDEX', KEYS[1], calls - 1))
if oldest and now - oldest < window then return tostring(oldest + window - now) end
redis.call('LPUSH', KEYS[1], string.format('%.6f', now))
redis.call('LTRIM', KEYS[1], 0, calls - 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""
