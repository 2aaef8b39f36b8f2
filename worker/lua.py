"""Lua scripts for the moves that must be atomic across every worker process.

Key names are computed in ``worker.keys`` and passed in; scripts that must reach a key
chosen at run time (a job picked from a backlog) get that key's prefix as an argument.
"""

#: Register a request once. Same payload hash: nothing happens (a dead-lettered job is
#: put back on the backlog: that is a replay). Other payload hash: conflict.
#: KEYS: job, jobs_by_time, backlog, producer_ring. ARGV: payload_hash, now, request_id,
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
end
if redis.call('RPUSH', KEYS[3], ARGV[3]) == 1 then redis.call('RPUSH', KEYS[4], ARGV[4]) end
return {outcome, 'QUEUED'}
"""

#: Admit queued jobs while the account has free slots, taking producers in turn so one
#: producer's burst cannot starve another. Jobs whose deadline passed in the backlog are
#: finished as EXPIRED instead. Returns {admitted ids, expired ids}.
#: KEYS: active, producer_ring, due, paused_until.
#: ARGV: now, quota, job key prefix, backlog key prefix, most entries to look at.
ADMIT = """
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[4]) or '0')
local admitted, expired = {}, {}
if paused > now then return {admitted, expired} end
local budget = tonumber(ARGV[5])
while budget > 0 and redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) do
  budget = budget - 1
  local producer = redis.call('LPOP', KEYS[2])
  if not producer then break end
  local backlog = ARGV[4] .. producer
  local id = redis.call('LPOP', backlog)
  if redis.call('LLEN', backlog) > 0 then redis.call('RPUSH', KEYS[2], producer) end
  if id then
    local job = ARGV[3] .. id
    if redis.call('HGET', job, 'state') == 'QUEUED' then
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
        table.insert(admitted, id)
      end
    end
  end
end
return {admitted, expired}
"""

#: Move a job to a new state if it is in one of the expected states (compare-and-set).
#: KEYS: job, due, active. ARGV: request_id, expected states (comma-separated), new state,
#: due score ('' keep, '-' remove), release slot ('1'/'0'), field/value pairs...
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
return {1, state}
"""

#: Put an admitted job back at the front of its producer's backlog and pause admission
#: (the account said it is full). KEYS: job, due, active, backlog, producer_ring,
#: paused_until. ARGV: request_id, producer, now, pause until.
REQUEUE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'ADMITTED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'updated_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('LPUSH', KEYS[4], ARGV[1]) == 1 then redis.call('LPUSH', KEYS[5], ARGV[2]) end
local paused = tonumber(redis.call('GET', KEYS[6]) or '0')
if tonumber(ARGV[4]) > paused then redis.call('SET', KEYS[6], ARGV[4]) end
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
