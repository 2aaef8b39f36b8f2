-- Hand out timers due before now + horizon, leasing each: its score moves to due +
-- lease, so a timer whose task was lost (a killed worker) comes due again. Each time a
-- timer is handed out again without a step having set it since (its task was lost, or
-- still waits on a long queue), its lease doubles, up to 2^max_doublings times: copies of
-- steps that wait on the control queue must not lengthen that queue (at scale they had
-- made it 40 times longer). The job's 'claims' field counts the hand-outs; every move
-- that sets the timer clears it (transition.lua).
-- Returns [id, due, lease score, claims, id, due, lease score, claims, ...] (strings).
local due = unpack(KEYS)
local now, horizon, lease, limit, job_prefix, max_doublings = unpack(ARGV)

local t = tonumber(now)
local items = redis.call('ZRANGEBYSCORE', due, '-inf', t + tonumber(horizon),
                         'WITHSCORES', 'LIMIT', 0, tonumber(limit))
local claimed = {}
for i = 1, #items, 2 do
  local job = job_prefix .. items[i]
  local claims = 1
  -- A timer without a record (its job was forgotten) is handed out to be cleared, and
  -- creates none.
  if redis.call('EXISTS', job) == 1 then claims = redis.call('HINCRBY', job, 'claims', 1) end
  local doublings = math.min(claims - 1, tonumber(max_doublings))
  local leased = math.max(tonumber(items[i + 1]), t) + tonumber(lease) * 2 ^ doublings
  redis.call('ZADD', due, leased, items[i])
  table.insert(claimed, items[i])
  table.insert(claimed, items[i + 1])
  table.insert(claimed, tostring(leased))
  table.insert(claimed, tostring(claims))
end
return claimed
