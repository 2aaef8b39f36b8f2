-- Drop dead letters: every entry scored at or before a cutoff, then the oldest beyond a
-- count, with their documents, metric labels and replay marks, in one round trip.
-- Returns how many entries were dropped.
local dead_letters, dead_letters_replaying, dead_letter_labels = unpack(KEYS)
local entry_prefix, cutoff, keep = unpack(ARGV)  -- cutoff: '' for none; keep: -1 for no cap

local dropped = 0
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('DEL', entry_prefix .. id)
    redis.call('HDEL', dead_letters_replaying, id)
    redis.call('HDEL', dead_letter_labels, id)
  end
  dropped = dropped + #ids
end
if cutoff ~= '' then
  drop(redis.call('ZRANGEBYSCORE', dead_letters, '-inf', cutoff))
  redis.call('ZREMRANGEBYSCORE', dead_letters, '-inf', cutoff)
end
local cap = tonumber(keep)
if cap >= 0 then
  local excess = redis.call('ZCARD', dead_letters) - cap
  if excess > 0 then
    drop(redis.call('ZRANGE', dead_letters, 0, excess - 1))
    redis.call('ZREMRANGEBYRANK', dead_letters, 0, excess - 1)
  end
end
return dropped
