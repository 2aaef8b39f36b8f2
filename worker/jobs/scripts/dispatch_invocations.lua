-- Hand out ready scenario items while the target has fewer than `limit` InvokeHarness
-- calls in flight, lowest index first; each becomes dispatched and counts as in flight
-- from now. Items whose request no longer runs its items, or that moved on, are dropped.
-- In-flight entries silent past `stale_after` whose request no longer runs its items are
-- let go (a live request's own step ends its dead attempts).
-- Returns the members handed out (`request_id|index|attempt`).
local invocations, invocations_ready = unpack(KEYS)
local now, limit, job_prefix, items_prefix, stale_after, batch = unpack(ARGV)
-- include: state_table

local t = tonumber(now)
local function parse(member)
  local id, index, attempt = string.match(member, '^(.*)|(%d+)|(%d+)$')
  return id, index, tonumber(attempt)
end
local function preparing(id)
  return id and is('preparing', redis.call('HGET', job_prefix .. id, 'state'))
end

local silent = redis.call('ZRANGEBYSCORE', invocations, '-inf', t - tonumber(stale_after),
                          'LIMIT', 0, tonumber(batch))
for _, member in ipairs(silent) do
  if not preparing(parse(member)) then redis.call('ZREM', invocations, member) end
end

local handed = {}
local budget = tonumber(batch)
while budget > 0 and redis.call('ZCARD', invocations) < tonumber(limit) do
  budget = budget - 1
  local head = redis.call('ZPOPMIN', invocations_ready)
  if #head == 0 then break end
  local member = head[1]
  local id, index, attempt = parse(member)
  if preparing(id) then
    local raw = redis.call('HGET', items_prefix .. id, index)
    local item = raw and cjson.decode(raw)
    if item and item.status == 'ready' and item.attempt == attempt then
      item.status = 'dispatched'
      redis.call('HSET', items_prefix .. id, index, cjson.encode(item))
      redis.call('ZADD', invocations, t, member)
      table.insert(handed, member)
    end
  end
end
return handed
