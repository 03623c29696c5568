-- Deletes a room's history and leaves its tombstone: when (ms, Redis clock) it was deleted,
-- kept for the live window. A resume from a position taken while the room was empty names
-- no entry; the tombstone tells it that a history it may have missed is gone (see
-- gateway/resume.py). One script, so no resume can see the history gone and no tombstone.
-- KEYS: history, tombstone (the same Redis Cluster slot: see Keys.history_gone)
-- ARGV: tombstone ttl ms (the live window; 0: history is off, no tombstone)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('DEL', KEYS[1])
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[2], string.format('%.0f', now), 'PX', ARGV[1])
end
return now
