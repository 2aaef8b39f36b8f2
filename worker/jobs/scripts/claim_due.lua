-- Hand out timers due before now + horizon, leasing each: its score moves to due +
-- lease, so a timer whose task was lost (a killed worker) comes due again.
-- Returns [id, due, lease score, id, due, lease score, ...] (numbers as strings).
local due = unpack(KEYS)
local now, horizon, lease, limit = unpack(ARGV)

local t = tonumber(now)
local items = redis.call('ZRANGEBYSCORE', due, '-inf', t + tonumber(horizon),
                         'WITHSCORES', 'LIMIT', 0, tonumber(limit))
local claimed = {}
for i = 1, #items, 2 do
  local leased = math.max(tonumber(items[i + 1]), t) + tonumber(lease)
  redis.call('ZADD', due, leased, items[i])
  table.insert(claimed, items[i])
  table.insert(claimed, items[i + 1])
  table.insert(claimed, tostring(leased))
end
return claimed
