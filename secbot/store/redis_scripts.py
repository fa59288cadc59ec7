"""The Lua scripts of :mod:`secbot.store.redis`: each runs atomically on the Redis server, so
two replicas can never interleave inside one of them."""

from __future__ import annotations

# Renew if we hold it, else take it only if free: one atomic step, so two replicas can never
# both believe they lead.
ACQUIRE_LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

RELEASE_LEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Claim the key and append in one step: a crash cannot leave the claim without the entry.
AUDIT_ONCE_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""

# Per-field HSET, only on a record that exists: two writers of different fields (a reaction and
# the publisher, or two replicas) never lose each other's change, and an update arriving after
# the record expired does not leave a partial record behind.
UPDATE_RECORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# One round trip, atomic on the server: the first caller opens the window (and only the first
# sets the expiry, so duplicates never extend it); later callers count one more hit. A uuid that
# claims again (poll overlap, a retry after a crash) gets its original answer back instead of
# being counted twice. The TTL check also repairs a key that somehow lost its expiry.
CLAIM_DEDUP_LUA = """
local first = redis.call('HGET', KEYS[1], 'first')
if not first then
  redis.call('HSET', KEYS[1], 'first', ARGV[1], 'count', 1, 'u:' .. ARGV[1], 1)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {ARGV[1], 1}
end
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local seen = redis.call('HGET', KEYS[1], 'u:' .. ARGV[1])
if seen then
  return {first, tonumber(seen)}
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'u:' .. ARGV[1], count)
return {first, count}
"""

# A member joins its group once (ZADD NX keeps its first arrival order, scored by a counter in
# the set's own hash so every replica agrees) and points at the group's message; the message's
# ts -> uuid link is left alone, so the group's first alert keeps the message.
LINK_MEMBER_LUA = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  local n = redis.call('HINCRBY', KEYS[2], 'next', 1)
  redis.call('ZADD', KEYS[1], 'NX', n, ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Compare-and-delete: an older attempt finishing late never clears a newer attempt's intent.
CLEAR_INTENT_LUA = """
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
