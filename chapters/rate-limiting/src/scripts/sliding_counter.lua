-- Sliding window counter: two fixed windows' counts, the previous one weighted by how much of
-- it the sliding window still covers. An estimate (it assumes the previous window's requests were
-- spread evenly), in one small hash per client instead of a log.
-- KEYS[1]: the client's hash {window, current, previous}. ARGV[1]: the limit; ARGV[2]: the window
-- in ms. Returns {allowed, remaining, retry_after_ms, reset_after_ms, now_us}.
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = now_us / 1000
local number = math.floor(now / window)
local into = now - number * window

local stored = redis.call('HMGET', KEYS[1], 'window', 'current', 'previous')
local at = tonumber(stored[1])
local current, previous = tonumber(stored[2]) or 0, tonumber(stored[3]) or 0
if at == number - 1 then
  previous, current = current, 0
elseif at ~= number then
  previous, current = 0, 0
end
local estimate = previous * (window - into) / window + current

if estimate + 1 > limit then
  -- When would one more fit? In this window, once the previous count's weight has fallen far
  -- enough; else in the next, where this window's count is the one that is weighted.
  local retry
  if current + 1 <= limit and previous > 0 then
    retry = window * (1 - (limit - current - 1) / previous) - into
  else
    retry = window - into + math.max(0, window * (1 - (limit - 1) / current))
  end
  local reset = current > 0 and 2 * window - into or window - into
  return {0, 0, math.max(1, math.ceil(retry)), math.ceil(reset), now_us}
end
redis.call('HSET', KEYS[1], 'window', number, 'current', current + 1, 'previous', previous)
-- Once the next window is over too, neither count matters: the hash goes.
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window - into))
return {1, math.floor(limit - estimate - 1), 0, math.ceil(2 * window - into), now_us}
