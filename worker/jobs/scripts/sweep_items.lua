-- The step of a request running its scenario items (docs/scenarios.md), over the JSON
-- state of each item (`items`, by index): a new item, or a retry whose backoff ended,
-- becomes ready and joins the target's ready queue (by index: every run's first item
-- before any run's second); a dispatched item that lost its in-flight entry is ready
-- again, and one no task claimed within `resend_after` is handed out again (the claim
-- makes a second task harmless); an invocation silent past `stale_after` died (a killed
-- worker): its attempt ends, and the next, under a new session id, is ready, unless
-- the item is out of retries (it fails). The job's timer is set to when this must run
-- again (a backoff's end, a silence limit, a resend), or once every item has ended,
-- `ingestion_delay` after the last stream's end; never past the deadline.
-- Returns {ended, failed, open, the last stream's end, members to hand out again}.
local job, items, due, invocations, invocations_ready = unpack(KEYS)
local request_id, count, now, stale_after, resend_after, max_failures, ingestion_delay,
      deadline = unpack(ARGV)
-- include: state_table

if not is('preparing', redis.call('HGET', job, 'state')) then return {0, 0, 0, '0', {}} end
local t = tonumber(now)
local stale, resend_wait = tonumber(stale_after), tonumber(resend_after)
local ended, failed, open, last_end = 0, 0, 0, 0
local wake = tonumber(deadline)
local resend = {}

for i = 0, tonumber(count) - 1 do
  local field = tostring(i)
  local raw = redis.call('HGET', items, field)
  local item, changed
  if raw then
    item = cjson.decode(raw)
  else
    item = {status = 'waiting', attempt = 0, sessions = 0, failures = 0, not_before = 0}
    changed = true
  end
  local member = request_id .. '|' .. field .. '|' .. item.attempt
  if item.status == 'waiting' and item.not_before <= t then
    item.status, changed = 'ready', true
  end
  if item.status == 'dispatched' then
    local seen = tonumber(redis.call('ZSCORE', invocations, member))
    if not seen then
      item.status, changed = 'ready', true
    elseif seen + resend_wait <= t then
      table.insert(resend, member)
      redis.call('ZADD', invocations, 'XX', t, member)
      wake = math.min(wake, t + resend_wait)
    else
      wake = math.min(wake, seen + resend_wait)
    end
  elseif item.status == 'invoking' then
    local seen = tonumber(redis.call('ZSCORE', invocations, member))
    if not seen or seen + stale <= t then
      redis.call('ZREM', invocations, member)
      item.failures = item.failures + 1
      item.error = 'session ' .. (item.session_id or '?') .. ': the invocation died '
        .. '(no sign of life for ' .. stale .. ' s: a killed worker, a hung connection)'
      if item.failures > tonumber(max_failures) then
        item.status = 'failed'
      else
        item.attempt, item.status = item.attempt + 1, 'ready'
        member = request_id .. '|' .. field .. '|' .. item.attempt
      end
      changed = true
    else
      wake = math.min(wake, seen + stale)
    end
  end
  if item.status == 'ready' then
    redis.call('ZADD', invocations_ready, 'NX', i, member)
    -- Ready items go out as in-flight calls end; look again in case none does.
    wake = math.min(wake, t + resend_wait)
  elseif item.status == 'waiting' then
    wake = math.min(wake, item.not_before)
  end
  if item.status == 'ended' then
    ended = ended + 1
    last_end = math.max(last_end, item.ended_at)
  elseif item.status == 'failed' then
    failed = failed + 1
  else
    open = open + 1
  end
  if changed then redis.call('HSET', items, field, cjson.encode(item)) end
end

if open == 0 then
  wake = math.min(tonumber(deadline), ended > 0 and last_end + tonumber(ingestion_delay) or t)
end
redis.call('ZADD', due, math.max(wake, t), request_id)
-- All 17 digits: tostring's 14 can round the end up, past now, and the step would
-- wait for an end that is over.
return {ended, failed, open, string.format('%.17g', last_end), resend}
