-- What each target's tick has to do, for every target in one round trip: how many jobs
-- hold its slots (its running jobs are watched), whether admission has anything to do
-- (a free slot, not paused, and requests waiting or held), and whether a request waits
-- past its deadline. A tick then works only on the targets that have work: an idle target
-- costs it these few reads and nothing else (no admission script, no watch task).
-- ARGV after the named ones: per target, its quota and its keys (active, queued_by_deadline,
-- held, admission_paused_until, the backlog-turns prefix).
-- Returns, per target in order: {slot holders, 1 if admission has work else 0,
-- 1 if a queued request is past its deadline else 0}.
local now, highest_priority = unpack(ARGV, 1, 2)

local t, top = tonumber(now), tonumber(highest_priority)
local out = {}
for i = 3, #ARGV, 6 do
  local quota, active, deadlines, held, paused, turns =
    tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
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
  table.insert(out, {holders, admit, overdue})
end
return out
