-- Settle a replay once: clear the entry's replay mark if it still holds this token.
-- Returns 1 if this call settled it.
local dead_letters_replaying = unpack(KEYS)
local dead_letter_id, token = unpack(ARGV)

if redis.call('HGET', dead_letters_replaying, dead_letter_id) == token then
  redis.call('HDEL', dead_letters_replaying, dead_letter_id)
  return 1
end
return 0
