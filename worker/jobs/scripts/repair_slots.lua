-- Repair the slot set: a member whose state holds no slot any more is released; a
-- member without a timer gets one due now, so its next step (a poll, or the stop at
-- its deadline) runs.
-- Returns {rearmed ids, released ids}.
local active, due = unpack(KEYS)
local now, job_prefix = unpack(ARGV, 1, 2)
-- ARGV[3..]: request_ids
-- include: state_table

local rearmed, released = {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', active, id) == 1 then
    if is('slot', redis.call('HGET', job_prefix .. id, 'state')) then
      if not redis.call('ZSCORE', due, id) then
        redis.call('ZADD', due, now, id)
        table.insert(rearmed, id)
      end
    else
      redis.call('SREM', active, id)
      table.insert(released, id)
    end
  end
end
return {rearmed, released}
