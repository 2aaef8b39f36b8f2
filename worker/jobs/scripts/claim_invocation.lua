-- Claim a dispatched attempt of a scenario item just before its InvokeHarness call: only
-- one task ever claims an attempt, so a session id is invoked at most once (a redelivered
-- task, or a second task sent for the same attempt, finds it claimed). The claim records
-- the session id and refreshes the in-flight entry.
-- Returns the item's failures so far (its retry budget spent), or -1 if not claimed.
local job, items, invocations = unpack(KEYS)
local index, attempt, session_id, now, member = unpack(ARGV)
-- include: state_table

if not is('preparing', redis.call('HGET', job, 'state')) then
  redis.call('ZREM', invocations, member)
  return -1
end
local raw = redis.call('HGET', items, index)
if not raw then return -1 end
local item = cjson.decode(raw)
if item.status ~= 'dispatched' or item.attempt ~= tonumber(attempt) then return -1 end
item.status, item.session_id = 'invoking', session_id
item.sessions = math.max(item.sessions, item.attempt + 1)
redis.call('HSET', items, index, cjson.encode(item))
redis.call('ZADD', invocations, tonumber(now), member)
return item.failures
