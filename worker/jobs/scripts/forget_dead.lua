-- Forget dead job records whose dead letter is gone (purged, replayed elsewhere, or
-- trimmed by age or count), with every index that names them, so dead jobs cannot fill
-- the job store. A record still dead is forgotten only if its entry is still missing (or,
-- for a record that never learned its entry, it died before max_age ago); its remote job,
-- if it has one, becomes an orphan the janitor stops and deletes.
-- ARGV after the named ones: per record, its id, its dead letter's key ('' for none), its
-- target's remote_names and published_by_time keys.
-- Returns the forgotten ids.
local dead_jobs, jobs_by_time, due, stalled = unpack(KEYS)
local job_prefix, items_prefix, died_before = unpack(ARGV, 1, 3)
-- include: state_table

local forgotten = {}
for i = 4, #ARGV, 4 do
  local id, letter, remote_names, published_by_time = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local job = job_prefix .. id
  local died = tonumber(redis.call('ZSCORE', dead_jobs, id))
  local gone = letter ~= '' and redis.call('EXISTS', letter) == 0
  local unknown = letter == '' and died and died <= tonumber(died_before)
  if is('dead', redis.call('HGET', job, 'state')) and (gone or unknown) then
    local name = redis.call('HGET', job, 'remote_name')
    if name and name ~= '' and redis.call('HGET', remote_names, name) == id then
      redis.call('HDEL', remote_names, name)
    end
    redis.call('DEL', job, items_prefix .. id)
    for _, index in ipairs({dead_jobs, jobs_by_time, due, stalled, published_by_time}) do
      redis.call('ZREM', index, id)
    end
    table.insert(forgotten, id)
  elseif not redis.call('EXISTS', job) then
    redis.call('ZREM', dead_jobs, id)
  end
end
return forgotten
