-- What each target's tick has to do, for every target in one round trip: how many jobs
-- hold its slots, whether their listing is due (watch_due: none yet, or its time came),
-- whether admission has anything to do (a free slot, not paused, and requests waiting or
-- held), and whether a request waits past its deadline. A tick then works only on the
-- targets that have work: an idle target costs it these few reads and nothing else.
-- A due listing is claimed for listing_lease seconds (its time moved on by that much): the
-- watch sent for it, or the next one once its message expired unrun, is the only one in
-- flight, however far behind the workers are (200 targets re-sent theirs every tick).
-- ARGV after the named ones: per target, its quota, its name and its keys (active,
-- queued_by_deadline, held, admission_paused_until, the backlog-turns prefix).
-- Returns, per target in order: {slot holders, 1 if admission has work else 0,
-- 1 if a queued request is past its deadline else 0, 1 if its listing is due else 0}.
local watch_due = unpack(KEYS)
local now, highest_priority, listing_lease = unpack(ARGV, 1, 3)

local t, top, lease = tonumber(now), tonumber(highest_priority), tonumber(listing_lease)
local out = {}
for i = 4, #ARGV, 7 do
  local quota, name, active, deadlines, held, paused, turns = tonumber(ARGV[i]), ARGV[i + 1],
    ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local holders = redis.call('SCARD', active)
  local admit = 0
  if holders < quota and (tonumber(redis.call('GET', paused)) or 0) <= t then
    if redis.call('LLEN', held) > 0 then
      admit = 1
    else
      for priority = 0, top do
        if redis.call('ZCARD', turns .. priority) > 0 then admit = 1; break end
      end
    end
  end
  local overdue = redis.call('ZCOUNT', deadlines, '-inf', now) > 0 and 1 or 0
  local listing = 0
  if holders > 0 then
    local due = tonumber(redis.call('ZSCORE', watch_due, name))
    listing = (not due or due <= t) and 1 or 0
    if listing == 1 and lease > 0 then redis.call('ZADD', watch_due, t + lease, name) end
  end
  table.insert(out, {holders, admit, overdue, listing})
end
return out
