-- Expire queued requests whose deadline passed (as admit does when it meets one). An
-- expired id stays in its producer's backlog list; admit drops ids that no longer wait.
-- Ids in the deadline index that no longer wait leave it.
-- Returns the expired ids.
local due, active, queued_by_deadline, published_by_time, retained_by_time,
      draining_evaluators, dead_jobs = unpack(KEYS)
local now, job_prefix = unpack(ARGV, 1, 2)
-- ARGV[3..]: request_ids
-- include: expire

local expired = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local job = job_prefix .. id
  if target('expire_queued', redis.call('HGET', job, 'state') or '') then
    if tonumber(redis.call('HGET', job, 'deadline_at')) <= tonumber(now) then
      expire_in_backlog(id, job, now)
      table.insert(expired, id)
    end
  else
    redis.call('ZREM', queued_by_deadline, id)
  end
end
return expired
