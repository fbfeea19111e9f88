-- Sliding log: at most ARGV[1] requests in any ARGV[2] ms, exactly. Every admitted request is
-- a member of a sorted set scored by Redis's clock in microseconds; the window is
-- (now - window, now].
-- KEYS[1]: the client's sorted set. ARGV[3]: a member no other request uses (not the time: two
-- requests in the same microsecond, from two instances, would collapse into one).
-- Returns {allowed, remaining, retry_after_ms, reset_after_ms, now_us}.
local limit, window_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = window_ms * 1000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- Forget what has left the window, in the same call: the set never holds more than the limit.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  -- Refused and not recorded. A request is allowed again when the oldest one leaves.
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  local retry = math.ceil((oldest + window - now) / 1000)
  return {0, 0, retry, math.ceil((newest + window - now) / 1000), now}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return {1, limit - count - 1, 0, window_ms, now}
