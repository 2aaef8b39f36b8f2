-- Trim local records whose retention (counted from publication) ended. A record whose
-- remote job is still kept (its retention is longer than the record's) is looked at
-- again once that remote retention ends.
-- Returns the trimmed ids.
local published_by_time, jobs_by_time, due, remote_names = unpack(KEYS)
local cutoff, job_prefix = unpack(ARGV, 1, 2)
-- ARGV[3..]: request_ids
-- include: state_table

local trimmed = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local job = job_prefix .. id
  local score = redis.call('ZSCORE', published_by_time, id)
  if score and tonumber(score) <= tonumber(cutoff) then
    local state = redis.call('HGET', job, 'state')
    local remote = redis.call('HGET', job, 'batch_evaluation_id') or ''
    if is('retained', state) and remote ~= '' then
      local published = tonumber(redis.call('HGET', job, 'published_at')) or tonumber(score)
      local retention = tonumber(redis.call('HGET', job, 'retention_seconds')) or 0
      redis.call('ZADD', published_by_time, published + retention, id)
    elseif not state or is('trimmable', state) then
      local name = redis.call('HGET', job, 'remote_name')
      if name and name ~= '' and redis.call('HGET', remote_names, name) == id then
        redis.call('HDEL', remote_names, name)
      end
      redis.call('DEL', job)
      redis.call('ZREM', published_by_time, id)
      redis.call('ZREM', jobs_by_time, id)
      redis.call('ZREM', due, id)
      table.insert(trimmed, id)
    else
      redis.call('ZREM', published_by_time, id)
    end
  end
end
return trimmed
