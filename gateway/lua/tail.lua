-- A room's last history entry of one shard, and Redis's time, at one moment (an empty
-- history's position is the time it was seen empty: see gateway/resume.py).
-- KEYS[1] the room's history of the shard
-- Returns {last entry (0 or 1 of them), TIME}
return {redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1), redis.call('TIME')}
