-- Record how a claimed invocation ended, if its attempt is still the item's: `ended`
-- (the stream ended: the session is evaluated), `retry` (the call was refused before
-- the stream: the same session id may go again after `not_before`), `interrupted` (the
-- session was used: a new attempt, under a new session id, goes after `not_before`) or
-- `failed` (left out). A retry or an interruption spends `spends` of the item's retries;
-- past `max_failures` the item fails. Its in-flight entry goes whatever happened, and
-- the request's step is woken (its timer due now, unless it is due sooner).
-- Returns 1 if recorded.
local job, items, invocations, due = unpack(KEYS)
local request_id, index, attempt, member, now, result, stop_reason, why, not_before,
      spends, max_failures = unpack(ARGV)
-- include: state_table

redis.call('ZREM', invocations, member)
local raw = redis.call('HGET', items, index)
if not raw then return 0 end
local item = cjson.decode(raw)
if item.status ~= 'invoking' or item.attempt ~= tonumber(attempt) then return 0 end
if result == 'ended' then
  item.status, item.stop_reason, item.ended_at, item.error = 'ended', stop_reason,
    tonumber(now), nil
elseif result == 'failed' then
  item.status, item.error = 'failed', why
else
  -- Every refusal counts for the backoff, throttles too (which spend no retry).
  item.failures, item.error = item.failures + tonumber(spends), why
  item.refusals = (item.refusals or 0) + 1
  if item.failures > tonumber(max_failures) then
    item.status = 'failed'
  else
    if result == 'interrupted' then item.attempt = item.attempt + 1 end
    item.status, item.not_before = 'waiting', tonumber(not_before)
  end
end
redis.call('HSET', items, index, cjson.encode(item))
if is('preparing', redis.call('HGET', job, 'state')) then
  redis.call('ZADD', due, 'LT', tonumber(now), request_id)
end
return 1
