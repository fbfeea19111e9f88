-- GCRA, the generic cell rate algorithm (as redis-cell implements it): the token bucket's
-- behaviour from one stored number per client, the theoretical arrival time (TAT) of its next
-- request if it kept exactly to the rate. A request is allowed unless it comes more than the
-- burst's worth of intervals ahead of that schedule.
-- KEYS[1]: the client's TAT in ms. ARGV[1] requests per ARGV[2] ms; ARGV[3]: the burst.
-- Returns {allowed, remaining, retry_after_ms, reset_after_ms, now_us}.
local interval = tonumber(ARGV[2]) / tonumber(ARGV[1]) -- ms between requests at the rate
local tolerance = interval * tonumber(ARGV[3])        -- how far ahead of now the TAT may run
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = now_us / 1000

local tat = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now)
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now), now_us}
end
-- The TAT is all there is to keep, and only until the schedule has caught up with the clock.
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now), now_us}
