-- Take one call from a shared rate limit: a sliding log of the last `calls` calls (the
-- `limits` library's moving window), with a window in fractions of a second and Redis's
-- own clock, so every host counts time alike (worker/backends/ratelimit.py says why).
-- Returns '0' when the call may go now (it is counted), else the seconds until it may.
local log = unpack(KEYS)  -- list of call times, newest first
local calls, window, now = unpack(ARGV)  -- now: '' for Redis's clock

local t = tonumber(now)
if not t then
  local clock = redis.call('TIME')
  t = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end
local n, seconds = tonumber(calls), tonumber(window)
local oldest = tonumber(redis.call('LINDEX', log, n - 1))
if oldest and t - oldest < seconds then return tostring(oldest + seconds - t) end
redis.call('LPUSH', log, string.format('%.6f', t))
redis.call('LTRIM', log, 0, n - 1)
redis.call('PEXPIRE', log, math.ceil(seconds * 1000))
return '0'
