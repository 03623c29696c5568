-- A resume's read of one shard's history of a room, at one moment (a script runs whole, as a
-- MULTI would; a script may read the time, which a cluster's MULTI may not): the entry at the
-- position (is it still there?), the entries after it, the room's tombstone and Redis's time.
-- KEYS[1] the room's history of the shard, KEYS[2] its tombstone (same slot)
-- ARGV[1] the position's history entry id, ARGV[2] at most this many entries after it
-- Returns {own entry (0 or 1 of them), entries after, tombstone or false, TIME}
local own = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1], 'COUNT', 1)
local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local gone = redis.call('GET', KEYS[2])
return {own, after, gone, redis.call('TIME')}
