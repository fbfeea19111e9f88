-- Token bucket: a bucket of ARGV[3] tokens (the burst) refilled at ARGV[1] tokens per ARGV[2] ms;
-- a request takes one token or is refused. The refill is computed from the time since the bucket
-- was last written, on Redis's clock, so there is no timer and no clock per instance.
-- KEYS[1]: the client's hash {tokens, at}. ARGV[4], when given, is the caller's own clock in ms:
-- only the demo's counter-example passes it, to show what clocks that disagree do.
-- Returns {allowed, remaining, retry_after_ms, reset_after_ms, now_us}.
local rate = tonumber(ARGV[1]) / tonumber(ARGV[2]) -- tokens per ms
local burst = tonumber(ARGV[3])
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = tonumber(ARGV[4]) or now_us / 1000

local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(stored[1]), tonumber(stored[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
end
-- Refill for the time elapsed, never past the burst.
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)

if tokens < 1 then
  -- Refused, and nothing taken. Retry when one whole token has grown.
  return {0, 0, math.ceil((1 - tokens) / rate), math.ceil((burst - tokens) / rate), now_us}
end
tokens = tokens - 1
local full = math.ceil((burst - tokens) / rate)
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.6f', tokens), 'at', string.format('%.3f', now))
-- A full bucket is the same as no bucket: the key can go once it would be full again.
redis.call('PEXPIRE', KEYS[1], math.max(1, full))
return {1, math.floor(tokens), 0, full, now_us}
