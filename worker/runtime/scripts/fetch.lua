-- Pop one message from the first non-empty queue list and record it as unacknowledged
-- in the same step (worker/runtime/broker.py says why). KEYS and ARGV vary in number.
-- KEYS: the queue lists in fetch order, then the unacked hash and its index.
-- ARGV: the time to index the message under, UNREADABLE_HEADER, the most raw bytes a
-- substitute keeps, OVERSIZED_HEADER, the longest item that can hold a message within
-- the size limits, then each list's queue name, then for each list '1' to record what
-- it takes as unacknowledged ('0' for a no_ack consumer).
-- Returns {list key, envelope, delivery tag} or false.
local unacked, index = KEYS[#KEYS - 1], KEYS[#KEYS]
local lists = #KEYS - 2
local NAMED = 5  -- ARGV before the queue names
local longest = tonumber(ARGV[5])
local ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local B64 = {}
for i = 1, 64 do B64[i - 1] = string.byte(ALPHABET, i) end

local function base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = string.byte(data, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    out[#out + 1] = string.char(B64[math.floor(n / 262144)], B64[math.floor(n / 4096) % 64],
                                b and B64[math.floor(n / 64) % 64] or 61, c and B64[n % 64] or 61)
  end
  return table.concat(out)
end

-- cjson refuses a \uD800-\uDFFF escape that Python's json accepts (lone surrogates, as
-- Celery's kwargsrepr header can carry). Only the properties are read here, so every
-- such escape (an odd run of backslashes before the u) becomes a '?'.
local function without_surrogate_escapes(item)
  return (item:gsub('(\\+)(u[dD][89aAbBcCdDeEfF]%x%x)', function(slashes, escape)
    if #slashes % 2 == 1 then return slashes:sub(2) .. '?' end
  end))
end

-- Why kombu could not deliver and restore the item as it is (nil if it can). What cjson
-- reads but Python's json does not (raw control characters in strings, hex numbers) is
-- caught on the Python side (problem_with, restorable).
local function unusable(item)
  local ok, message = pcall(cjson.decode, item)
  if not ok then ok, message = pcall(cjson.decode, without_surrogate_escapes(item)) end
  if not ok or type(message) ~= 'table' then return 'not a JSON object', nil end
  if message.headers ~= nil and type(message.headers) ~= 'table' then
    return 'headers that are not an object', nil
  end
  local properties = message.properties
  if type(properties) ~= 'table' then return 'no properties', nil end
  local tag, info = properties.delivery_tag, properties.delivery_info
  if type(tag) ~= 'string' or not tag:find('^[\33-\126]+$') then
    return 'no delivery_tag of printable ASCII in its properties', nil
  end
  if type(info) ~= 'table' or type(info.exchange) ~= 'string'
      or type(info.routing_key) ~= 'string' then
    return 'no delivery_info exchange and routing_key in its properties', nil
  end
  return nil, properties
end

for i = 1, lists do
  -- Read first, pop last: a write refused in between leaves the item where it was.
  local item = redis.call('LINDEX', KEYS[i], -1)
  if item then
    local why, properties, oversized
    -- An item longer than any message within the limits is never decoded (cjson took
    -- seconds of Redis on 80 MiB, and the worker hundreds of MB).
    if #item > longest then
      why, oversized = 'an item of ' .. #item .. ' bytes, longer than the ' .. longest
                       .. ' a message within the size limits can take', tostring(#item)
    else
      why, properties = unusable(item)
    end
    -- Restored to the queue it was taken from: its own delivery_info is the sender's word.
    local tag, exchange, routing_key = nil, '', ARGV[NAMED + i]
    if why then
      local now = redis.call('TIME')
      local kept = item:sub(1, tonumber(ARGV[3]))
      -- The hash of what is kept, and the size: hashing 80 MiB would hold Redis too.
      tag = 'unreadable-' .. redis.sha1hex(kept .. #item) .. '-' .. now[1] .. '.' .. now[2]
      if #kept < #item then
        why = why .. ' (the first ' .. #kept .. ' of ' .. #item .. ' bytes kept)'
      end
      item = cjson.encode({
        body = base64(kept), ['content-type'] = 'application/octet-stream',
        ['content-encoding'] = 'binary', headers = {[ARGV[2]] = why, [ARGV[4]] = oversized},
        properties = {body_encoding = 'base64', delivery_tag = tag, priority = 0,
                      delivery_info = {exchange = exchange, routing_key = routing_key}}})
    else
      tag = properties.delivery_tag
    end
    if ARGV[NAMED + lists + i] == '1' then
      redis.call('ZADD', index, ARGV[1], tag)
      -- What kombu's QoS.append writes: [message, exchange, routing_key].
      local record = '[' .. item .. ',' .. cjson.encode(exchange) .. ','
                     .. cjson.encode(routing_key) .. ']'
      redis.call('HSET', unacked, tag, record)
    end
    -- RPOP without copying the item out a second time (80 MiB: 200 ms of Redis each).
    redis.call('LTRIM', KEYS[i], 0, -2)
    return {KEYS[i], item, tag}
  end
end
return false
