-- Commit what one read of one shard's ingest partitions gave (every key here carries the
-- shard's hash tag: one Redis Cluster slot), every partition fenced by its lease
-- and by its cursor. Writes, all or nothing per partition: each event to the history of
-- every room it matched (the history entry id is the room's position), the latest value per
-- key (snapshots), the dead letters and the partition's cursor; then the inbox entries of
-- each gateway (the compact format of shared/streams.py) for all the owned partitions
-- together. A partition is skipped whole (nothing of it is written) when another worker
-- owns it now ("lost"), or when its cursor is not where this read started ("stale": a
-- commit before this one, still on its way when this one was sent, failed or was skipped,
-- or another worker committed while this one's lease had lapsed). So a worker can send a
-- commit before the previous one landed: a partition's commits apply as a chain, never
-- with a gap and never twice.
-- Returns {lost, stale}: the (1-based) numbers, in the argument order, of the partitions
-- skipped for each reason.
--
-- Data frames are built here, once per event and gateway, and written by the gateway to
-- every member socket as they are:
--   {"type":"<type>","status":"success","event_id":"<id>","timestamp":"<ingest time>",
--    "rooms":["<room>",...],"positions":{"<room>":"<position>",...},"data":<event JSON>}
-- `positions` only for the rooms whose history recorded the event (the room's position's
-- part of this shard: <epoch>:<last 8 of the room id>:<history entry id>, which Redis
-- assigns as it records it; with several shards the gateway writes the whole position), the event's JSON as the worker gives it (serialized once). A latest value (what a
-- snapshot lists) is the frame without rooms and positions. Types, event ids, timestamps
-- and room ids are plain ASCII that JSON writes as is, so they are joined, not encoded
-- (the worker passing the heads inside its JSON argument cost Redis the unescaping).
--
-- KEYS[1] dead-letter stream, KEYS[2] epoch, KEYS[3] sports,
-- KEYS[4..3+2P] per partition: its lease, its cursor; KEYS[4+2P..] inboxes (referred to by
-- their index: 1 is KEYS[4+2P])
-- ARGV[1] worker id, [2] epoch if none exists yet, [3] dead-letter maxlen,
-- [4] history key prefix, [5] history count cap, [6] history window (and ttl) ms,
-- [7] offline maxlen, [8] offline ttl ms, [9] latest key prefix, [10] games key prefix,
-- [11] snapshot ttl ms, [12] the read as JSON (one value: decoding it in C is far cheaper
-- than one script argument per field), a list with per partition, in KEYS order:
--   [cursor it was read after ("0-0" if none was committed), new cursor, dead letters (each
--   a flat list of field/value pairs), items (in ingest order)], an item being one of
--   ["c", inbox index, sent_at]                                  (a gateway's canary)
--   ["g", game, sport]              (index the game, after its first event: SADD, PEXPIRE)
--   ["d", event id, type, conflation key, n, game ("" if none), timestamp,
--         history rooms [[room id, mode], ...], deliveries [[inbox index,
--         [room id, ...]], ...]]
--   ["m", the same fields as "d"] for a must-deliver event that is also a latest value (an
--         odds suspension or resume): its key is the latest value's key only, and its inbox
--         items carry no key, so a gateway never conflates the frame away
--   where ARGV[n] is the event's data JSON (its own argument: inside the JSON it would be
--   escaped and unescaped), mode "l": a live room (capped by count, trimmed by age once per
--   period), "o": an offline-delivery room (capped by count); upper case ("L", "O") also
--   sets the history's TTL (and marks the first entry of a new history).
-- The worker sets TTLs once per key per refresh period, not per event: a key it wrote
-- recently still has most of its TTL, and a key it did not is refreshed on its next event.
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end
local reads = cjson.decode(ARGV[12])
local first_inbox = 4 + 2 * #reads

-- Per gateway, its inbox entries being built: one per ENTRY_ITEMS items, each a list of
-- fields, so that no XADD unpacks more values than Lua's stack takes (about 8000).
local ENTRY_ITEMS = 256
local inboxes = {}  -- inbox index -> list of {fields, count}
local order = {}    -- inbox indexes in first-use order
-- Items are in the compact format (shared/streams.py): one field per item, named by its
-- index, whose value the caller built whole (parts joined by 0x1F), so adding one makes no
-- string.
local INDEXES = {}  -- count -> the field name of that item ("0" for the first), made once
local function add(index, value)
  local entries = inboxes[index]
  if not entries then
    entries = {}
    inboxes[index] = entries
    order[#order + 1] = index
  end
  local entry = entries[#entries]
  if not entry or entry.count == ENTRY_ITEMS then
    entry = {fields = {}, count = 0}
    entries[#entries + 1] = entry
  end
  local fields = entry.fields
  local f = #fields
  local count = entry.count + 1
  entry.count = count
  local name = INDEXES[count]
  if not name then
    name = tostring(count - 1)
    INDEXES[count] = name
  end
  fields[f + 1], fields[f + 2] = name, value
end

local history_prefix, latest_prefix, games_prefix = ARGV[4], ARGV[9], ARGV[10]
local live_maxlen, live_ttl, offline_maxlen, offline_ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local snapshot_ttl = ARGV[11]
local cutoff = nil
local function live_cutoff()  -- the oldest history id a live room keeps: now - its window
  if not cutoff then
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    cutoff = string.format('%.0f', ms - tonumber(live_ttl)) .. '-0'
  end
  return cutoff
end

local function record(room, mode, event_id, type_, data)
  -- Appends to a room's history; returns the new entry's id (the room's position).
  local hkey = history_prefix .. room
  local maxlen, ttl = live_maxlen, live_ttl
  if mode == 'o' or mode == 'O' then maxlen, ttl = offline_maxlen, offline_ttl end
  if mode == 'l' or mode == 'o' then
    return redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                      'e', event_id, 't', type_, 'd', data)
  end
  -- Checked once per refresh period: the first entry of a history says so ('f'), for a
  -- subscriber that joined while it was empty (its position is 0-<Redis ms then>: it
  -- continues while this entry is there, see gateway/resume.py). The TTL is set here only,
  -- by a write to this history: an empty room's position older than the TTL is never
  -- recovered, as a history written after it may have expired since.
  local id
  if redis.call('EXISTS', hkey) == 0 then
    id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                    'e', event_id, 't', type_, 'd', data, 'f', '1')
  else
    id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                    'e', event_id, 't', type_, 'd', data)
  end
  redis.call('PEXPIRE', hkey, ttl)
  if mode == 'L' then
    -- A live room's window is also an age: what is older goes, once per period.
    redis.call('XTRIM', hkey, 'MINID', '~', live_cutoff())
  end
  return id
end

local function commit_event(item, conflatable)
  local event_id, type_, key, data, game = item[2], item[3], item[4], ARGV[item[5]], item[6]
  -- Per recorded room, its entry of a frame's "positions" ('"<room>":"<position>"'), made in
  -- one concatenation; frames are too (Lua makes one string of a chain of '..', so most
  -- items, one room each, cost one string, not one per piece).
  local positions = {}
  for _, pair in ipairs(item[8]) do
    local room = pair[1]
    local id = record(room, pair[2], event_id, type_, data)
    positions[room] = '"' .. room .. '":"' .. epoch .. ':' .. string.sub(room, -8) .. ':' .. id
                      .. '"'
  end
  local head = '{"type":"' .. type_ .. '","status":"success","event_id":"' .. event_id
               .. '","timestamp":"' .. item[7] .. '"'
  if game ~= '' then
    redis.call('HSET', latest_prefix .. game, key, head .. ',"data":' .. data .. '}')
  end
  -- After the frame, the conflation key if any.
  local key_part = (conflatable and key ~= '') and ('\31' .. key) or ''
  for _, delivery in ipairs(item[9]) do
    local rooms = delivery[2]
    local listed, quoted, position  -- the rooms comma-separated, and as JSON strings
    if #rooms == 1 then
      listed, position = rooms[1], positions[rooms[1]]
      quoted = '"' .. listed .. '"'
    else
      listed = table.concat(rooms, ',')
      quoted = '"' .. table.concat(rooms, '","') .. '"'
      local parts = {}
      for _, room in ipairs(rooms) do
        parts[#parts + 1] = positions[room]  -- nil (skipped) for a room not recorded
      end
      if #parts > 0 then position = table.concat(parts, ',') end
    end
    local value  -- the inbox item: its type, rooms, frame and key (the compact format)
    if position then
      value = type_ .. '\31' .. listed .. '\31' .. head .. ',"rooms":[' .. quoted
              .. '],"positions":{' .. position .. '},"data":' .. data .. '}' .. key_part
    else
      value = type_ .. '\31' .. listed .. '\31' .. head .. ',"rooms":[' .. quoted
              .. '],"data":' .. data .. '}' .. key_part
    end
    add(delivery[1], value)
  end
end

-- Every lease and cursor in one MGET and every new cursor in one MSET: one call each per
-- commit, not one per partition (measured side by side, about as fast as 8 GETs and 8 SETs:
-- the gain is fewer calls, not time).
local watched = {}
local P = #reads
for p = 1, P do watched[p], watched[P + p] = KEYS[2 + 2 * p], KEYS[3 + 2 * p] end
local current = redis.call('MGET', unpack(watched))
local cursors = {}
local lost, stale = {}, {}
for p, read in ipairs(reads) do
  if current[p] ~= ARGV[1] then
    lost[#lost + 1] = p
  elseif (current[P + p] or '0-0') ~= read[1] then
    stale[#stale + 1] = p
  else
    for _, fields in ipairs(read[3]) do
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
    end
    for _, item in ipairs(read[4]) do
      local kind = item[1]
      if kind == 'd' or kind == 'm' then
        commit_event(item, kind == 'd')
      elseif kind == 'c' then
        add(item[2], 'canary\31' .. item[3])
      else  -- 'g'
        local game, sport = item[2], item[3]
        redis.call('SADD', games_prefix .. sport, game)
        redis.call('SADD', KEYS[3], sport)
        redis.call('PEXPIRE', games_prefix .. sport, snapshot_ttl)
        redis.call('PEXPIRE', latest_prefix .. game, snapshot_ttl)
      end
    end
    cursors[#cursors + 1], cursors[#cursors + 2] = KEYS[3 + 2 * p], read[2]
  end
end

if #cursors > 0 then
  redis.call('MSET', unpack(cursors))
end

for _, index in ipairs(order) do
  for _, entry in ipairs(inboxes[index]) do
    -- NOMKSTREAM: a gateway reaped a moment ago gets nothing, not a new key.
    redis.call('XADD', KEYS[first_inbox - 1 + index], 'NOMKSTREAM', '*',
               'N', tostring(entry.count), unpack(entry.fields))
  end
end
return {lost, stale}
