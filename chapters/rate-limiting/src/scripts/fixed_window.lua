-- Fixed window: at most ARGV[1] requests in each window of ARGV[2] ms, the windows aligned on
-- multiples of the window on Redis's clock, so every instance agrees where one ends.
-- KEYS[1]: the client's hash {window = the window's number, count = requests admitted in it}.
-- Returns {allowed, remaining, retry_after_ms, reset_after_ms, now_us}.
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = now_us / 1000
local number = math.floor(now / window)
local reset = math.ceil((number + 1) * window - now)

local stored = redis.call('HMGET', KEYS[1], 'window', 'count')
local count = 0
if tonumber(stored[1]) == number then count = tonumber(stored[2]) end
if count >= limit then
  -- Refused, and not counted: a client that keeps retrying gets through when the window ends.
  return {0, 0, reset, reset, now_us}
end
redis.call('HSET', KEYS[1], 'window', number, 'count', count + 1)
-- The expiry is the window's end, set in the same call that counts: no counter outlives it.
redis.call('PEXPIRE', KEYS[1], reset)
return {1, limit - count - 1, 0, reset, now_us}
