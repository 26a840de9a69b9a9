"""Lua scripts for atomic task state changes in Redis.

Every transition is one script so a terminal record never changes again and two
workers can never both believe they own a run. ARGV[1] is always the key prefix.
Key names are built inside the scripts, so this targets standalone/sentinel Redis
(not Redis Cluster).
"""

from collections.abc import Iterable

from . import sketch
from .models import CANCELLABLE_STATES, RETRYABLE_STATES, TERMINAL_STATES, TaskState


def _lua_set(states: Iterable[TaskState]) -> str:
    return "{" + ", ".join(f"{s.value}=true" for s in sorted(states)) + "}"


# The state sets come from taskq.models, so the scripts and the Python side never disagree.
COMMON = f"""
local P = ARGV[1]
local TERMINAL = {_lua_set(TERMINAL_STATES)}
local CANCELLABLE = {_lua_set(CANCELLABLE_STATES)}
local RETRYABLE = {_lua_set(RETRYABLE_STATES)}
""" + r"""local function event(maxlen, id, status, task, worker, ts)
  redis.call('XADD', P..'events', 'MAXLEN', '~', maxlen, '*',
    'type', 'task', 'id', id, 'status', status, 'task', task or '', 'worker', worker or '', 'ts', ts)
end
local function move(id, from, to, score)
  if from then redis.call('ZREM', P..'idx:state:'..from, id) end
  redis.call('ZADD', P..'idx:state:'..to, score, id)
end
local function set_or_drop(key, name, value)
  if value == '' then redis.call('HDEL', key, name) else redis.call('HSET', key, name, value) end
end
-- A single first delivery is told in full by the record's own fields (attempts, worker,
-- started_at, finished_at, status, error): its history is not stored, which keeps most records
-- small enough for Redis' compact hash encoding (TaskRecord.from_hash rebuilds it). Once there is
-- more to tell (a retry, a redelivery, a manual retry) the whole history is written.
local function implicit_history(stored, attempts, worker, started_at)
  if stored then return cjson.decode(stored) end
  if attempts >= 1 then
    return {{attempt=1, worker=worker, started_at=tonumber(started_at), reason='first delivery'}}
  end
  return {}
end
local function store_history(key, history, implicit)
  if implicit and #history == 1 and history[1]['reason'] == 'first delivery' then
    redis.call('HDEL', key, 'history')
  else
    redis.call('HSET', key, 'history', cjson.encode(history))
  end
end
local function create(key, id, task, args, kwargs, created, max_retries, timeout, gen)
  redis.call('HSET', key, 'id', id, 'task', task, 'args', args, 'kwargs', kwargs, 'status', 'queued',
    'attempts', 0, 'gen', gen, 'created_at', created, 'max_retries', max_retries, 'timeout', timeout)
  redis.call('ZADD', P..'idx:all', created, id)
  redis.call('ZADD', P..'idx:task:'..task, created, id)
  redis.call('SADD', P..'task-names', task)
  move(id, nil, 'queued', created)
end
local function create_extra(key, priority, rate_key, concurrency_key, trace)
  -- The optional request fields, stored only when set (a plain task's hash stays small).
  if priority ~= '' and priority ~= 'normal' then redis.call('HSET', key, 'pr', priority) end
  if rate_key ~= '' then redis.call('HSET', key, 'rk', rate_key) end
  if concurrency_key ~= '' then redis.call('HSET', key, 'ck', concurrency_key) end
  if trace ~= '' then redis.call('HSET', key, 'tp', trace) end
end

-- Flow control (taskq.limits, docs/architecture.md "Flow control"). A rate limit reserves start
-- slots: rl:<scope> holds the scope's next free slot (ms; GCRA's theoretical arrival time). A
-- concurrency limit counts holders: cc:<scope> maps task id -> 'w:<worker>|<lease>' (running) or
-- 'r:<until ms>' (a slot handed to a waiter on its way back through Kafka); ccw:<scope> holds the
-- waiters by arrival, cclim:<scope> the limit last seen, 'ccw-scopes' the scopes with waiters.
-- A held-back task keeps its status (queued or retrying) with 'held' telling why; its message is
-- acknowledged, so it never takes a worker slot or blocks the messages behind it.
local function fmt_ms(x) return string.format('%.3f', x) end
local function cc_stale(holder, owner)
  -- Whether a concurrency slot's holder no longer runs: its reservation ran out, its worker's lease
  -- is gone, or its record moved on without it.
  local kind, rest = string.sub(owner, 1, 2), string.sub(owner, 3)
  if kind == 'r:' then return tonumber(rest) < tonumber(redis.call('TIME')[1]) * 1000 end
  local w, l = string.match(rest, '^(.*)|([^|]*)$')
  if not w then return true end
  if redis.call('GET', P..'hb:'..w) ~= l then return true end
  local cur = redis.call('HMGET', P..'task:'..holder, 'status', 'lease')
  return cur[1] ~= 'running' or cur[2] ~= l
end
local function cc_hand_over(scope, now)
  -- A slot of scope is free: give it to the longest waiter still waiting; returns whether one took it.
  local C, Wq = P..'cc:'..scope, P..'ccw:'..scope
  while true do
    local first = redis.call('ZPOPMIN', Wq)
    if #first == 0 then
      redis.call('SREM', P..'ccw-scopes', scope)
      return false
    end
    local id = first[1]
    local tkey = P..'task:'..id
    local cur = redis.call('HMGET', tkey, 'status', 'heldk')
    if (cur[1] == 'queued' or cur[1] == 'retrying') and cur[2] == scope then
      redis.call('HSET', C, id, 'r:'..fmt_ms(tonumber(now) * 1000 + 60000))
      redis.call('HDEL', tkey, 'heldk')
      redis.call('HSET', tkey, 'held', 'concurrency slot granted')
      redis.call('ZADD', P..'scheduled', now, id)
      return true
    end
  end
end
local function cc_release(key, id, now)
  -- The run of key ended (or moved on): free the concurrency slots it held.
  local scopes = redis.call('HGET', key, 'ccs')
  if not scopes then return end
  redis.call('HDEL', key, 'ccs')
  for scope in string.gmatch(scopes, '[^\n]+') do
    if redis.call('HDEL', P..'cc:'..scope, id) == 1 then cc_hand_over(scope, now) end
  end
end
local function cc_sweep(scope, now)
  -- Free the slots of holders that no longer run and hand them (and any room a raised limit made) over.
  local C = P..'cc:'..scope
  local limit = tonumber(redis.call('GET', P..'cclim:'..scope) or '0')
  local holders = redis.call('HGETALL', C)
  for j = 1, #holders, 2 do
    if cc_stale(holders[j], holders[j + 1]) then redis.call('HDEL', C, holders[j]) end
  end
  local woken = 0
  while redis.call('HLEN', C) < limit do
    if not cc_hand_over(scope, now) then break end
    woken = woken + 1
  end
  if redis.call('ZCARD', P..'ccw:'..scope) == 0 then redis.call('SREM', P..'ccw-scopes', scope) end
  return woken
end

local function requeue_one(id, now, maxlen)
  -- A finished (failed, dead, cancelled) task back to queued under a new message generation.
  -- Returns the new gen, or nil and the status that forbids it.
  local key = P..'task:'..id
  local cur = redis.call('HMGET', key, 'status', 'gen', 'error', 'result', 'finished_at', 'created_at', 'task',
    'history', 'attempts', 'worker', 'started_at')
  local st = cur[1]
  if not st then return nil, 'missing' end
  if not RETRYABLE[st] then return nil, st end
  if not cur[8] and tonumber(cur[9] or '0') == 1 then
    -- The first delivery's history was implicit: write it before the fields that tell it change.
    local first = {attempt=1, worker=cur[10], started_at=tonumber(cur[11]), finished_at=tonumber(cur[5]),
      outcome=st, reason='first delivery'}
    if cur[3] and cur[3] ~= '' then first['error'] = cur[3] end
    redis.call('HSET', key, 'history', cjson.encode({first}))
  end
  local gen = tonumber(cur[2] or '0') + 1
  redis.call('HSET', key, 'status', 'queued', 'gen', gen, 'prev_status', st, 'prev_error', cur[3] or '',
    'prev_result', cur[4] or '', 'prev_finished_at', cur[5] or '', 'error', '', 'result', '', 'finished_at', '')
  redis.call('PERSIST', key)
  move(id, st, 'queued', tonumber(cur[6] or now))
  event(maxlen, id, 'queued', cur[7], '', now)
  return gen
end

-- Workflows (taskq.workflows). wf:<id> holds the graph in 'spec' (nodes 1..n, node 1 the root;
-- per node k = t(ask) | c(hain) | g(roup), p its parent (0 for the root), c its children, and for
-- a task t its name, i immutable, r max_retries, o timeout; f a group's failure policy) and per
-- node i: s<i> its state (running | success | failed | dead | cancelled; absent: not started),
-- v<i> its result as raw JSON (or its error), a<i>/w<i> a task's args/kwargs (raw JSON), n<i> a
-- group's members still running. Each transition runs inside the script that records the
-- member's outcome, so a step is started once however often its predecessor's message is
-- redelivered; started tasks go to 'scheduled' due now, where any worker's scheduler produces them.
local WF_FAILED = {failed=true, dead=true, cancelled=true}
local wf_started = {n = 0}
local function wf_event(maxlen, wid, status, now)
  redis.call('XADD', P..'events', 'MAXLEN', '~', maxlen, '*', 'type', 'workflow', 'id', wid, 'status', status,
    'ts', now)
end
local function wf_json(v)
  if v == nil or v == false or v == '' then return 'null' end
  return v
end
local function wf_start(W, wid, spec, i, input, now, maxlen)
  local node = spec[i]
  redis.call('HSET', W, 's'..i, 'running')
  if node.k == 't' then
    local id = wid..'-'..i
    local key = P..'task:'..id
    if redis.call('EXISTS', key) == 1 then return end
    local args = redis.call('HGET', W, 'a'..i)
    if input and not node.i then
      if args == '[]' then args = '['..input..']' else args = '['..input..','..string.sub(args, 2) end
    end
    create(key, id, node.t, args, redis.call('HGET', W, 'w'..i), now, node.r or '', node.o or '', 0)
    redis.call('HSET', key, 'wf', wid, 'wn', i)
    redis.call('ZADD', P..'scheduled', now, id)
    event(maxlen, id, 'queued', node.t, '', now)
    wf_started.n = wf_started.n + 1
  elseif node.k == 'c' then
    wf_start(W, wid, spec, node.c[1], input, now, maxlen)
  else
    redis.call('HSET', W, 'n'..i, #node.c)
    for _, ch in ipairs(node.c) do wf_start(W, wid, spec, ch, input, now, maxlen) end
  end
end
local function wf_why(wid, spec, i, status, value)
  local node = spec[i]
  if node.k ~= 't' then return value end
  return node.t..' ('..wid..'-'..i..') '..status..': '..(value or '')
end
local function wf_done(W, wid, spec, i, status, value, now, maxlen, ttl)
  -- Node i finished with status; value is its result (raw JSON) or its error text.
  if redis.call('HGET', W, 's'..i) ~= 'running' then return end  -- told before (a redelivery)
  redis.call('HSET', W, 's'..i, status, 'v'..i, value or '')
  local node = spec[i]
  if node.k == 't' and status ~= 'success' and not redis.call('HGET', W, 'failed_task') then
    redis.call('HSET', W, 'failed_task', wid..'-'..i)
  end
  if redis.call('HGET', W, 'status') ~= 'running' then return end  -- cancelled: nothing more starts
  if node.p == 0 then
    if status == 'success' then
      redis.call('HSET', W, 'status', 'success', 'finished_at', now, 'result', value or '')
    else
      redis.call('HSET', W, 'status', 'failed', 'finished_at', now, 'error', value or '')
    end
    redis.call('PEXPIRE', W, ttl)
    wf_event(maxlen, wid, redis.call('HGET', W, 'status'), now)
    return
  end
  local parent = spec[node.p]
  if parent.k == 'c' then
    if status ~= 'success' then
      return wf_done(W, wid, spec, node.p, 'failed', wf_why(wid, spec, i, status, value), now, maxlen, ttl)
    end
    for pos, ch in ipairs(parent.c) do
      if ch == i then
        if pos == #parent.c then return wf_done(W, wid, spec, node.p, 'success', value, now, maxlen, ttl) end
        return wf_start(W, wid, spec, parent.c[pos + 1], wf_json(value), now, maxlen)
      end
    end
    return
  end
  if redis.call('HINCRBY', W, 'n'..node.p, -1) > 0 then return end
  -- The last member of the group: its result is the members' results in order, by its policy.
  local policy = parent.f or 'fail'
  local parts, failed = {}, nil
  for _, ch in ipairs(parent.c) do
    local cur = redis.call('HMGET', W, 's'..ch, 'v'..ch)
    if cur[1] == 'success' then
      if policy == 'run' then
        parts[#parts + 1] = '{"status":"success","result":'..wf_json(cur[2])..'}'
      else
        parts[#parts + 1] = wf_json(cur[2])
      end
    else
      failed = failed or ch
      if policy == 'run' then
        parts[#parts + 1] = '{"status":'..cjson.encode(cur[1] or 'failed')..',"error":'..cjson.encode(cur[2] or '')..'}'
      end
    end
  end
  if failed and policy == 'fail' then
    local cur = redis.call('HMGET', W, 's'..failed, 'v'..failed)
    return wf_done(W, wid, spec, node.p, 'failed', wf_why(wid, spec, failed, cur[1], cur[2]), now, maxlen, ttl)
  end
  return wf_done(W, wid, spec, node.p, 'success', '['..table.concat(parts, ',')..']', now, maxlen, ttl)
end
local function wf_member_done(key, status, value, now, maxlen, ttl)
  -- The task at key reached a terminal status: move its workflow on, if it belongs to one.
  local link = redis.call('HMGET', key, 'wf', 'wn')
  if not link[1] then return end
  local W = P..'wf:'..link[1]
  local spec = redis.call('HGET', W, 'spec')
  if spec then wf_done(W, link[1], cjson.decode(spec), tonumber(link[2]), status, value, now, maxlen, ttl) end
end
local function wf_reopen(W, wid, spec, i, now)
  -- Node i (finished, not successfully) runs again: so do the finished ancestors it failed.
  redis.call('HSET', W, 's'..i, 'running')
  redis.call('HDEL', W, 'v'..i)
  local p = spec[i].p
  if p == 0 then
    redis.call('HSET', W, 'status', 'running')
    redis.call('HDEL', W, 'error', 'finished_at', 'failed_task')
    redis.call('PERSIST', W)
    return
  end
  if spec[p].k == 'g' then redis.call('HINCRBY', W, 'n'..p, 1) end
  if redis.call('HGET', W, 's'..p) ~= 'running' then return wf_reopen(W, wid, spec, p, now) end
end
local function wf_retry_check(W, spec, i)
  -- Why node i cannot run again inside its workflow (nil when it can): every finished ancestor
  -- must have failed, or the rerun would start steps that already ran.
  if redis.call('HGET', W, 'status') == 'cancelled' then return 'was cancelled' end
  local p = spec[i].p
  while p ~= 0 do
    local st = redis.call('HGET', W, 's'..p)
    if st == 'running' then return nil end
    if not WF_FAILED[st] then return 'went on without it (its part of the workflow ended '..(st or 'unstarted')..')' end
    p = spec[p].p
  end
  return nil
end
"""

# The three hot transitions (create, start, finish) run in batches: one script call per batch,
# its items in a flat ARGV with a fixed stride (no per-call script overhead, no JSON to decode).
HOT = COMMON + r"""
local function create_one(id, task, args, kwargs, created, max_retries, timeout, pr, rk, ck, tp, maxlen, now)
  local key = P..'task:'..id
  if redis.call('EXISTS', key) == 1 then return 0 end
  create(key, id, task, args, kwargs, created, max_retries, timeout, 0)
  create_extra(key, pr, rk, ck, tp)
  event(maxlen, id, 'queued', task, '', now)
  return 1
end

-- Flow control at start. lim = {rate_n, rate_per, key_rate_n, key_rate_per, conc, key_conc}
-- (strings, '' when unset). Returns nil when the run may start now (its concurrency slots taken),
-- else why it is held back and until when (seconds; nil: until a slot is handed over).
local function hold_back(key, id, task, rk, ck, lim, worker, lease, now)
  local now_ms = tonumber(now) * 1000
  local reserved = redis.call('HGET', key, 'rsv')
  if not reserved then
    local scopes = {}
    if lim[1] ~= '' then scopes[#scopes + 1] = {'n:'..task, tonumber(lim[2]) * 1000 / tonumber(lim[1])} end
    if lim[3] ~= '' and rk ~= '' then
      scopes[#scopes + 1] = {'k:'..task..':'..rk, tonumber(lim[4]) * 1000 / tonumber(lim[3])}
    end
    if #scopes > 0 then
      local slot = now_ms
      for _, sc in ipairs(scopes) do
        slot = math.max(slot, tonumber(redis.call('GET', P..'rl:'..sc[1]) or '0'))
      end
      for _, sc in ipairs(scopes) do
        local nxt = slot + sc[2]
        redis.call('SET', P..'rl:'..sc[1], fmt_ms(nxt), 'PX', math.ceil(nxt - now_ms) + 60000)
      end
      if slot > now_ms then
        redis.call('HSET', key, 'rsv', fmt_ms(slot))
        return 'rate limit', slot / 1000
      end
    end
  end
  local wanted = {}
  if lim[5] ~= '' then wanted[#wanted + 1] = {'n:'..task, tonumber(lim[5])} end
  if lim[6] ~= '' and ck ~= '' then wanted[#wanted + 1] = {'k:'..task..':'..ck, tonumber(lim[6])} end
  if #wanted == 0 then
    redis.call('HDEL', key, 'rsv')
    return nil
  end
  local taken = {}
  for _, sc in ipairs(wanted) do
    local C = P..'cc:'..sc[1]
    redis.call('SET', P..'cclim:'..sc[1], sc[2])
    local room = redis.call('HEXISTS', C, id) == 1 or redis.call('HLEN', C) < sc[2]
    if not room then
      local holders = redis.call('HGETALL', C)
      for j = 1, #holders, 2 do
        if cc_stale(holders[j], holders[j + 1]) then redis.call('HDEL', C, holders[j]) end
      end
      room = redis.call('HLEN', C) < sc[2]
    end
    if not room then
      -- Wait for this scope; a slot already handed over in another scope goes to its next waiter.
      for _, t in ipairs(taken) do
        if redis.call('HDEL', P..'cc:'..t, id) == 1 then cc_hand_over(t, now) end
      end
      redis.call('ZADD', P..'ccw:'..sc[1], 'NX', redis.call('HGET', key, 'created_at') or now, id)
      redis.call('SADD', P..'ccw-scopes', sc[1])
      redis.call('HSET', key, 'heldk', sc[1])
      return 'concurrency limit', nil
    end
    redis.call('HSET', C, id, 'w:'..worker..'|'..lease)
    taken[#taken + 1] = sc[1]
  end
  redis.call('HSET', key, 'ccs', table.concat(taken, '\n'))
  redis.call('HDEL', key, 'rsv')
  return nil
end

-- A run lost with its worker ends here instead of running again: dead once the task has lost more
-- than max_lost runs (a poison task: it kills whichever worker runs it), or cancelled when a cancel
-- was asked while it ran. Returns {status, error}.
local function end_lost(key, id, task, owner, history, nlost, now, maxlen, ttl, created)
  local cancelled = redis.call('HEXISTS', key, 'cxl') == 1
  local status = cancelled and 'cancelled' or 'dead'
  local err = cancelled and 'cancelled: its worker was lost while running it'
    or string.format('its worker was lost %d times while running it; last: %s', nlost, owner)
  history[#history]['finished_at'] = tonumber(now)
  redis.call('HDEL', key, 'lease', 'prog', 'progm', 'cxl')
  cc_release(key, id, now)
  move(id, 'running', status, created)
  redis.call('HSET', key, 'status', status, 'finished_at', now, 'error', err)
  store_history(key, history, false)  -- the fields alone would not tell that the run was lost
  redis.call('PEXPIRE', key, ttl)
  wf_member_done(key, status, err, now, maxlen, ttl)
  event(maxlen, id, status, task, '', now)
  return {status, err}
end

-- Returns {'run', attempts, 'lost' | ''} | {'skip', reason} | {'busy', owner} | {'held', why, until}
--   | {'dead' | 'cancelled', error} (a lost run that ends: end_lost)
local function start_one(id, gen, worker, lease, now, task, args, kwargs, created, max_retries, timeout,
                         pr, rk, ck, tp, lim, maxlen, max_lost, ttl)
  gen = tonumber(gen)
  local key = P..'task:'..id
  local st = redis.call('HGET', key, 'status')
  if not st then
    -- The submitter died between Kafka's ack and its Redis write, or the record expired.
    -- A worker faster than the submitter's write also lands here: the event stream still shows
    -- every task as queued before it runs.
    create(key, id, task, args, kwargs, created, max_retries, timeout, gen)
    create_extra(key, pr, rk, ck, tp)
    event(maxlen, id, 'queued', task, '', now)
    st = 'queued'
  end
  if TERMINAL[st] then return {'skip', st} end
  local cur = redis.call('HMGET', key, 'gen', 'worker', 'lease', 'attempts', 'history', 'created_at', 'task',
    'started_at')
  if gen < tonumber(cur[1] or '0') then return {'skip', 'stale'} end
  local reason = 'first delivery'
  -- Queued again after it had finished: REQUEUE (a retry by hand) left prev_status behind.
  if st == 'queued' and redis.call('HEXISTS', key, 'prev_status') == 1 then reason = 'manual retry' end
  local lost = nil
  if st == 'running' then
    local owner = cur[2]
    local hb = redis.call('GET', P..'hb:'..owner)
    if hb and hb == cur[3] then
      -- The caller's own run: its earlier START succeeded but the answer was lost (Redis went away
      -- mid-reply). Hand the same attempt back; the worker checks that it does not run it already.
      if cur[3] == lease then return {'run', tonumber(cur[4] or '1')} end
      return {'busy', owner}
    end
    lost = owner
    reason = 'redelivered: worker '..owner..' was lost'
  elseif st == 'retrying' then
    reason = 'retry'
  end
  local history = nil
  if lost then
    history = implicit_history(cur[5], tonumber(cur[4] or '0'), cur[2], cur[8])
    if #history > 0 and not history[#history]['outcome'] then history[#history]['outcome'] = 'lost' end
    local nlost = 0
    for _, h in ipairs(history) do
      if h['outcome'] == 'lost' then nlost = nlost + 1 end
    end
    local cap = tonumber(max_lost)
    if #history > 0 and ((cap and nlost > cap) or redis.call('HEXISTS', key, 'cxl') == 1) then
      return end_lost(key, id, cur[7] or task, lost, history, nlost, now, maxlen, ttl, tonumber(cur[6] or now))
    end
  end
  if redis.call('SISMEMBER', P..'paused-tasks', task) == 1 then
    if lost then
      -- Paused while its worker was lost: the lost run ends (its slots freed) and the task waits queued.
      redis.call('HDEL', key, 'lease')
      cc_release(key, id, now)
      redis.call('HSET', key, 'status', 'queued')
      store_history(key, history, false)
      move(id, 'running', 'queued', tonumber(cur[6] or now))
    end
    -- Its task type is paused: it waits, in submission order, until the type is resumed.
    redis.call('ZADD', P..'ccw:p:'..task, 'NX', cur[6] or now, id)
    redis.call('HSET', key, 'held', 'paused', 'heldk', 'p:'..task, 'gen', gen + 1)
    return {'held', 'paused', ''}
  end
  if not lost and (lim[1] ~= '' or lim[3] ~= '' or lim[5] ~= '' or lim[6] ~= '') then
    -- (A lost run's takeover already passed its limits: it re-takes its slots below.)
    local why, till = hold_back(key, id, task, rk, ck, lim, worker, lease, now)
    if why then
      -- Acknowledge this message; a new generation comes back when due (rate) or handed a slot.
      redis.call('HSET', key, 'held', why, 'gen', gen + 1)
      if till then
        redis.call('HSET', key, 'eta', fmt_ms(till))
        redis.call('ZADD', P..'scheduled', fmt_ms(till), id)
      end
      return {'held', why, till and fmt_ms(till) or ''}
    end
    redis.call('HDEL', key, 'held')
  elseif lost and (lim[5] ~= '' or lim[6] ~= '') then
    local taken = {}
    if lim[5] ~= '' then taken[#taken + 1] = 'n:'..task end
    if lim[6] ~= '' and ck ~= '' then taken[#taken + 1] = 'k:'..task..':'..ck end
    for _, sc in ipairs(taken) do redis.call('HSET', P..'cc:'..sc, id, 'w:'..worker..'|'..lease) end
    redis.call('HSET', key, 'ccs', table.concat(taken, '\n'))
  end
  local attempts = tonumber(cur[4] or '0') + 1
  history = history or implicit_history(cur[5], attempts - 1, cur[2], cur[8])
  table.insert(history, {attempt=attempts, worker=worker, started_at=tonumber(now), reason=reason})
  redis.call('HSET', key, 'status', 'running', 'attempts', attempts, 'worker', worker, 'lease', lease,
    'started_at', now, 'gen', gen)
  store_history(key, history, true)
  move(id, st, 'running', tonumber(cur[6] or now))
  event(maxlen, id, 'running', cur[7], worker, now)
  -- 'lost': the run before this one was lost with its worker; the worker runs this one isolated.
  return {'run', attempts, lost and 'lost' or ''}
end

-- status is success | failed | dead | retrying (then ``due`` is when the retry is produced).
-- Returns 1 and the task name when recorded, 0 when this run no longer owns the task.
local function finish_one(id, lease, attempt, status, result, err, now, ttl, worker, maxlen, due, wf_ttl, tb)
  local key = P..'task:'..id
  local cur = redis.call('HMGET', key, 'status', 'lease', 'attempts', 'history', 'created_at', 'task', 'gen',
    'worker', 'started_at')
  if cur[1] ~= 'running' or cur[2] ~= lease or tonumber(cur[3]) ~= tonumber(attempt) then return 0 end
  local history = implicit_history(cur[4], tonumber(cur[3]), cur[8], cur[9])
  if #history > 0 then
    history[#history]['finished_at'] = tonumber(now)
    history[#history]['outcome'] = status == 'retrying' and 'retry' or status
    if err ~= '' then history[#history]['error'] = err end
  end
  redis.call('HDEL', key, 'lease', 'prog', 'progm', 'cxl')
  cc_release(key, id, now)
  move(id, 'running', status, tonumber(cur[5] or now))
  if status == 'retrying' then
    -- A new message generation is produced when due; the current message is acknowledged.
    redis.call('HSET', key, 'status', 'retrying', 'error', err, 'gen', tonumber(cur[7] or '0') + 1, 'eta', due)
    set_or_drop(key, 'tb', tb or '')
    store_history(key, history, false)  -- the fields no longer tell the first run (its outcome was a retry)
    redis.call('ZADD', P..'scheduled', due, id)
  else
    redis.call('HSET', key, 'status', status, 'finished_at', now)
    set_or_drop(key, 'result', result)
    set_or_drop(key, 'error', err)
    set_or_drop(key, 'tb', tb or '')  -- the failure's whole traceback (the error is its last line)
    store_history(key, history, true)
    redis.call('PEXPIRE', key, ttl)
    wf_member_done(key, status, status == 'success' and result or err, now, maxlen, wf_ttl)
  end
  return 1, cur[6], tonumber(cur[9] or now) - tonumber(cur[5] or now)
end
"""

# Per-task-type aggregates (Store.type_metrics reads them): for each finished run, counts by outcome
# and sketches of run time and wait time (submit to start), in per-minute hashes
# tt:m:<task>:<minute> (kept 2 h) and per-hour ones tt:h:<task>:<hour> (kept 8 days).
# Fields: n:<status>, R<k> / W<k> (log bucket k of taskq.sketch: percentiles within 2 %), sr / sw (sums
# of the same runs; older workers wrote rs / ws beside fixed buckets, which readers ignore).
# One HINCRBY per distinct field per batch, so their cost does not grow with the batch.
TYPE_STATS = sketch.into_lua(r"""
local SKETCH_LN_GAMMA, SKETCH_MIN = @SKETCH_LN_GAMMA@, @SKETCH_MIN@
local function sketch_of(x)
  if not (x >= SKETCH_MIN) then return 'z' end
  return string.format('%d', math.ceil(math.log(x) / SKETCH_LN_GAMMA))
end
local function type_stat(stats, task, status, run, wait)
  local t = stats[task]
  if not t then t = {} stats[task] = t end
  local function add(f, n) t[f] = (t[f] or 0) + n end
  add('n:'..status, 1)
  add('R'..sketch_of(run), 1)
  add('W'..sketch_of(math.max(wait, 0)), 1)
  add('sr', run)
  add('sw', math.max(wait, 0))
end
local function type_stats_write(stats, now)
  local minute, hour = math.floor(tonumber(now) / 60), math.floor(tonumber(now) / 3600)
  for task, fields in pairs(stats) do
    for _, k in ipairs({{P..'tt:m:'..task..':'..minute, 7200}, {P..'tt:h:'..task..':'..hour, 8 * 86400}}) do
      for f, n in pairs(fields) do
        if f == 'sr' or f == 'sw' then
          redis.call('HINCRBYFLOAT', k[1], f, string.format('%.6f', n))
        else
          redis.call('HINCRBY', k[1], f, n)
        end
      end
      redis.call('EXPIRE', k[1], k[2])
    end
  end
end
""")

# ARGV: prefix, maxlen, now, then per task (stride 11): id, task, args, kwargs, created_at, max_retries, timeout,
#   priority, rate_key, concurrency_key, traceparent.
# Returns one 1 (created) or 0 (a record existed already) per task.
CREATE = HOT + r"""
local maxlen, now = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 11 do
  out[#out + 1] = create_one(ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6],
    ARGV[i+7], ARGV[i+8], ARGV[i+9], ARGV[i+10], maxlen, now)
end
return out
"""

# A worker's turn: record outcomes, then claim runs for received messages.
# ARGV: prefix, worker, lease, now, ttl, maxlen, ttl_success, n_finish,
#   n_finish x (id, attempt, status, result, error, due, run seconds, traceback),
#   then per message: id, gen, task, args, kwargs, created_at, max_retries, timeout, priority,
#   rate_key, concurrency_key, traceparent, and its task's limits: rate (count, per seconds), per-key rate
#   (count, per seconds), concurrency, per-key concurrency ('' when unset), and how many runs of it may be
#   lost with their worker before it ends dead ('' for no cap): stride 19.
# Returns n_finish of 1/0 (recorded / no longer owned), then one {action, detail[, until]} per message.
APPLY = HOT + TYPE_STATS + r"""
local worker, lease, now, ttl, maxlen, ttl_success = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nfinish = tonumber(ARGV[8])
local out = {}
local counts = {}
local stats = {}
local i = 9
for _ = 1, nfinish do
  local status = ARGV[i+2]
  local ok, task, wait = finish_one(ARGV[i], lease, ARGV[i+1], status, ARGV[i+3], ARGV[i+4], now,
    status == 'success' and ttl_success or ttl, worker, maxlen, ARGV[i+5], ttl, ARGV[i+7])
  if ok == 1 then type_stat(stats, task, status, tonumber(ARGV[i+6]), wait) end
  out[#out + 1] = ok
  if ok == 1 and wf_started.n > 0 then
    out[#out] = 2  -- workflow steps were started: the worker wakes its scheduler
    wf_started.n = 0
  end
  if ok == 1 then
    counts[status] = (counts[status] or 0) + 1
    event(maxlen, ARGV[i], status, task, worker, now)
  end
  i = i + 8
end
type_stats_write(stats, now)
if nfinish > 0 then
  local wkey = P..'worker:'..worker
  local bucket = P..'tput:'..math.floor(tonumber(now) / 10)
  for status, n in pairs(counts) do
    redis.call('HINCRBY', wkey, status == 'success' and 'processed' or 'failed', n)
    redis.call('HINCRBY', bucket, status, n)
  end
  redis.call('EXPIRE', bucket, 3700)
end
while i <= #ARGV do
  out[#out + 1] = start_one(ARGV[i], ARGV[i+1], worker, lease, now, ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5],
    ARGV[i+6], ARGV[i+7], ARGV[i+8], ARGV[i+9], ARGV[i+10], ARGV[i+11],
    {ARGV[i+12], ARGV[i+13], ARGV[i+14], ARGV[i+15], ARGV[i+16], ARGV[i+17]}, maxlen, ARGV[i+18], ttl)
  i = i + 19
end
return out
"""

# A task whose message could not be started (the worker dead-lettered it whole) ends dead with the
# reason, unless it is already terminal: its record never stays queued or running with no message
# left to run it. Kept minimal (COMMON only) so it works when a bigger script is what failed.
# ARGV: prefix, id, error, now, ttl, maxlen. Returns 1 when it ended the task, 0 otherwise.
END_UNSTARTABLE = COMMON + r"""
local id, err, now, ttl, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = P..'task:'..id
local cur = redis.call('HMGET', key, 'status', 'created_at', 'task')
if not cur[1] or cur[1] == 'success' or cur[1] == 'failed' or cur[1] == 'dead' or cur[1] == 'cancelled' then
  return 0
end
redis.call('ZREM', P..'idx:state:'..cur[1], id)
redis.call('ZADD', P..'idx:state:dead', tonumber(cur[2]) or tonumber(now), id)
redis.call('HDEL', key, 'lease')
redis.call('HSET', key, 'status', 'dead', 'error', err, 'finished_at', now)
redis.call('PEXPIRE', key, ttl)
event(maxlen, id, 'dead', cur[3], '', now)
return 1
"""

# A running task is asked to stop: 'cxl' is set, and the task sees it through its context
# (taskq.current().is_cancelled()); it ends cancelled if it stops by raising taskq.Cancelled.
# ARGV: prefix, id, now, ttl, maxlen. Returns {1, 'cancelled'}, {2, 'running'} (asked) or {0, current_status}
CANCEL = COMMON + r"""
local id, now = ARGV[2], ARGV[3]
local key = P..'task:'..id
local st = redis.call('HGET', key, 'status')
if not st then return {0, 'missing'} end
if st == 'running' then
  redis.call('HSET', key, 'cxl', '1')
  redis.call('XADD', P..'events', 'MAXLEN', '~', ARGV[5], '*', 'type', 'task', 'id', id, 'status', 'running',
    'task', redis.call('HGET', key, 'task') or '', 'worker', redis.call('HGET', key, 'worker') or '',
    'cancel_requested', '1', 'ts', now)
  return {2, 'running'}
end
if not CANCELLABLE[st] then return {0, st} end
redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now, 'error', 'cancelled')
redis.call('ZREM', P..'scheduled', id)
local heldk = redis.call('HGET', key, 'heldk')
if heldk then redis.call('ZREM', P..'ccw:'..heldk, id) end
redis.call('HDEL', key, 'held', 'heldk', 'rsv')
move(id, st, 'cancelled', tonumber(redis.call('HGET', key, 'created_at') or now))
redis.call('PEXPIRE', key, ARGV[4])
event(ARGV[5], id, 'cancelled', redis.call('HGET', key, 'task'), '', now)
wf_member_done(key, 'cancelled', 'cancelled', now, ARGV[5], ARGV[4])
return {1, 'cancelled'}
"""

# Put a finished (failed, dead, cancelled) task back in the queue under a new message generation.
# A workflow's member runs again inside its workflow (its failed ancestors reopen) and goes to
# 'scheduled' due now, for a scheduler to produce; other tasks are produced by the caller.
# It grants a fresh retry budget: failures up to attempt retry_limit (the attempts so far + the
# record's max_retries, else ARGV[5]) are retried again; no budget (0, or none known) sets none.
# ARGV: prefix, id, now, maxlen, budget ('' unknown), states it may be in ('' any retryable, else
# comma separated). Returns {1, gen} (caller produces), {2, gen} (scheduled) or {0, why}
REQUEUE = COMMON + r"""
local id, now = ARGV[2], ARGV[3]
local key = P..'task:'..id
if ARGV[6] and ARGV[6] ~= '' then
  local st = redis.call('HGET', key, 'status')
  if st and not string.find(','..ARGV[6]..',', ','..st..',', 1, true) then return {0, st} end
end
local link = redis.call('HMGET', key, 'wf', 'wn')
local W, spec, node = nil, nil, nil
if link[1] then
  W = P..'wf:'..link[1]
  local raw = redis.call('HGET', W, 'spec')
  if raw then
    spec, node = cjson.decode(raw), tonumber(link[2])
    local why = wf_retry_check(W, spec, node)
    if why then return {0, 'workflow '..link[1]..' '..why} end
  end
end
local gen, why = requeue_one(id, now, ARGV[4])
if not gen then return {0, why} end
local cur = redis.call('HMGET', key, 'max_retries', 'attempts')
local budget = tonumber(cur[1] or '') or tonumber(ARGV[5] or '')
if budget and budget > 0 then
  redis.call('HSET', key, 'retry_limit', tonumber(cur[2] or '0') + budget)
else
  redis.call('HDEL', key, 'retry_limit')
end
if spec then
  if redis.call('HGET', W, 's'..node) ~= 'running' then wf_reopen(W, link[1], spec, node, now) end
  redis.call('ZADD', P..'scheduled', now, id)
  return {2, gen}
end
return {1, gen}
"""

# Undo REQUEUE when Kafka refused the new message. ARGV: prefix, id, gen, ttl, maxlen, now
UNQUEUE = COMMON + r"""
local id, gen = ARGV[2], tonumber(ARGV[3])
local key = P..'task:'..id
local cur = redis.call('HMGET', key, 'status', 'gen', 'prev_status', 'prev_error', 'prev_result',
  'prev_finished_at', 'created_at', 'task')
if cur[1] ~= 'queued' or tonumber(cur[2]) ~= gen then return 0 end
redis.call('HSET', key, 'status', cur[3], 'error', cur[4], 'result', cur[5], 'finished_at', cur[6])
move(id, 'queued', cur[3], tonumber(cur[7] or ARGV[6]))
redis.call('PEXPIRE', key, ARGV[4])
event(ARGV[5], id, cur[3], cur[8], '', ARGV[6])
return 1
"""

# Create a delayed task: recorded queued with an eta, produced to Kafka by a scheduler when due.
# ARGV: prefix, id, task, args, kwargs, created_at, max_retries, timeout, priority, rate_key,
#   concurrency_key, traceparent, maxlen, now, due
CREATE_SCHEDULED = COMMON + r"""
local id = ARGV[2]
local key = P..'task:'..id
if redis.call('EXISTS', key) == 1 then return 0 end
create(key, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], 0)
create_extra(key, ARGV[9], ARGV[10], ARGV[11], ARGV[12])
redis.call('HSET', key, 'eta', ARGV[15])
redis.call('ZADD', P..'scheduled', ARGV[15], id)
event(ARGV[13], id, 'queued', ARGV[3], '', ARGV[14])
return 1
"""

# Resume a paused task type: its held tasks go to 'scheduled' due now, oldest first, at most
# ARGV[4] per call. ARGV: prefix, task, now, limit. Returns how many were released and how many still wait.
TYPE_RESUME = COMMON + r"""
local task, now = ARGV[2], tonumber(ARGV[3])
local base = math.floor(now * 10000)  -- 0.1 ms ticks as an integer: exact in a double, unlike now + n * 0.0001
redis.call('SREM', P..'paused-tasks', task)
local Wq = P..'ccw:p:'..task
local ids = redis.call('ZRANGE', Wq, 0, tonumber(ARGV[4]) - 1)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', Wq, id)
  local tkey = P..'task:'..id
  local cur = redis.call('HMGET', tkey, 'status', 'heldk')
  if (cur[1] == 'queued' or cur[1] == 'retrying') and cur[2] == 'p:'..task then
    redis.call('HDEL', tkey, 'heldk', 'held')
    -- 0.1 ms steps keep the submission order through 'scheduled' (equal scores sort by id). The
    -- score is written from integers: rounding now + n * 0.0001 made neighbours equal now and then.
    local tick = base + n
    redis.call('ZADD', P..'scheduled', string.format('%d.%04d', math.floor(tick / 10000), tick % 10000), id)
    n = n + 1
  end
end
return {n, redis.call('ZCARD', Wq)}
"""

# Hand the concurrency slots of holders that no longer run to waiters. ARGV: prefix, now.
# Returns how many waiters were handed a slot.
CC_SWEEP = COMMON + r"""
local woken = 0
for _, scope in ipairs(redis.call('SMEMBERS', P..'ccw-scopes')) do
  woken = woken + cc_sweep(scope, ARGV[2])
end
return woken
"""

# Drop the entries of a mixed index (idx:all, idx:task:<name>) whose record has expired, walking it
# by score from its cursor (hash prune-cursor) up to ARGV[3]. Those indexes are trimmed by score at
# the longest TTL; with a shorter TTL for successes their expired records' entries would stay that
# long. ARGV: prefix, index (without prefix), upto score, limit. Returns {examined, dropped}.
PRUNE_EXPIRED = r"""
local P, idx, upto, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P..idx
local from = redis.call('HGET', P..'prune-cursor', idx) or '-inf'
if from ~= '-inf' and tonumber(from) > tonumber(upto) then from = '-inf' end  -- the TTL grew
local rows = redis.call('ZRANGEBYSCORE', key, from, upto, 'WITHSCORES', 'LIMIT', 0, limit)
local gone = {}
for i = 1, #rows, 2 do
  if redis.call('EXISTS', P..'task:'..rows[i]) == 0 then gone[#gone + 1] = rows[i] end
end
if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
-- A full batch continues from its last score (inclusive: ties are looked at again, not skipped).
local cursor = upto
if #rows == 2 * limit and rows[#rows] ~= from then cursor = rows[#rows] end
redis.call('HSET', P..'prune-cursor', idx, cursor)
return {#rows / 2, #gone}
"""

# A running task's progress. ARGV: prefix, id, lease, value ('' for none), message, maxlen, now.
# Returns 1 if recorded, 0 when that run no longer owns the task, and whether cancel was requested.
PROGRESS = COMMON + r"""
local key = P..'task:'..ARGV[2]
local cur = redis.call('HMGET', key, 'status', 'lease', 'task', 'worker', 'cxl')
if cur[1] ~= 'running' or cur[2] ~= ARGV[3] then return {0, cur[5] or ''} end
set_or_drop(key, 'prog', ARGV[4])
set_or_drop(key, 'progm', ARGV[5])
redis.call('XADD', P..'events', 'MAXLEN', '~', ARGV[6], '*', 'type', 'progress', 'id', ARGV[2],
  'status', 'running', 'task', cur[3] or '', 'worker', cur[4] or '', 'progress', ARGV[4], 'message', ARGV[5],
  'ts', ARGV[7])
return {1, cur[5] or ''}
"""

# Claim due scheduled tasks for producing. A claim is a lease in 'scheduling'; claims whose lease
# ran out (the scheduler died before producing) become due again.
# ARGV: prefix, now, lease_until, limit. Returns a flat list: id, gen, id, gen, ...
CLAIM_DUE = COMMON + r"""
local now = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', P..'scheduling', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', P..'scheduling', id)
  redis.call('ZADD', P..'scheduled', now, id)
end
local due = redis.call('ZRANGEBYSCORE', P..'scheduled', '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(due) do
  redis.call('ZREM', P..'scheduled', id)
  local cur = redis.call('HMGET', P..'task:'..id, 'status', 'gen')
  if cur[1] == 'queued' or cur[1] == 'retrying' then
    redis.call('ZADD', P..'scheduling', ARGV[3], id)
    table.insert(out, id)
    table.insert(out, cur[2] or '0')
  end
end
return out
"""

# Reserve an idempotency key for a new task id, or return the id that already holds it.
# KEYS: none. ARGV: prefix, key, id, ttl_ms. Returns the id that owns the key.
IDEMPOTENCY = r"""
local k = ARGV[1]..'idem:'..ARGV[2]
local ok = redis.call('SET', k, ARGV[3], 'NX', 'PX', ARGV[4])
if ok then return ARGV[3] end
return redis.call('GET', k)
"""


# Create a workflow and start its first steps. ARGV: prefix, id, spec (JSON), now, maxlen,
# then per task node (stride 3): node index, args, kwargs (raw JSON). Returns 1, or 0 if it exists.
WF_CREATE = COMMON + r"""
local wid, now, maxlen = ARGV[2], ARGV[4], ARGV[5]
local W = P..'wf:'..wid
if redis.call('EXISTS', W) == 1 then return 0 end
local spec = cjson.decode(ARGV[3])
redis.call('HSET', W, 'id', wid, 'spec', ARGV[3], 'status', 'running', 'created_at', now)
for i = 6, #ARGV, 3 do
  redis.call('HSET', W, 'a'..ARGV[i], ARGV[i+1], 'w'..ARGV[i], ARGV[i+2])
end
redis.call('ZADD', P..'workflows', now, wid)
wf_event(maxlen, wid, 'running', now)
wf_start(W, wid, spec, 1, nil, now, maxlen)
return 1
"""

# Cancel a running workflow: nothing more starts, its queued and retrying tasks are cancelled,
# running ones finish. ARGV: prefix, id, now, ttl, maxlen. Returns {1, n cancelled} or {0, status}
WF_CANCEL = COMMON + r"""
local wid, now, ttl, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local W = P..'wf:'..wid
local st = redis.call('HGET', W, 'status')
if not st then return {0, 'missing'} end
if st ~= 'running' then return {0, st} end
redis.call('HSET', W, 'status', 'cancelled', 'finished_at', now, 'error', 'cancelled')
local spec = cjson.decode(redis.call('HGET', W, 'spec'))
local n = 0
for i, node in ipairs(spec) do
  if node.k ~= 't' and redis.call('HGET', W, 's'..i) == 'running' then
    redis.call('HSET', W, 's'..i, 'cancelled')
  elseif node.k == 't' and redis.call('HGET', W, 's'..i) == 'running' then
    local id = wid..'-'..i
    local key = P..'task:'..id
    local tst = redis.call('HGET', key, 'status')
    if tst and CANCELLABLE[tst] then
      redis.call('HSET', key, 'status', 'cancelled', 'finished_at', now, 'error', 'cancelled')
      redis.call('ZREM', P..'scheduled', id)
      move(id, tst, 'cancelled', tonumber(redis.call('HGET', key, 'created_at') or now))
      redis.call('PEXPIRE', key, ttl)
      event(maxlen, id, 'cancelled', node.t, '', now)
      redis.call('HSET', W, 's'..i, 'cancelled', 'v'..i, 'cancelled')
      n = n + 1
    end
  end
end
redis.call('PEXPIRE', W, ttl)
wf_event(maxlen, wid, 'cancelled', now)
return {1, n}
"""

# Run a failed workflow again from its failed steps: every failed task the failure came through
# is requeued (to 'scheduled', due now) and its failed ancestors reopen; steps that succeeded keep
# their results. ARGV: prefix, id, now, maxlen. Returns {1, n requeued} or {0, why}
WF_RETRY = COMMON + r"""
local wid, now, maxlen = ARGV[2], ARGV[3], ARGV[4]
local W = P..'wf:'..wid
local st = redis.call('HGET', W, 'status')
if not st then return {0, 'missing'} end
if st ~= 'failed' then return {0, st} end
local spec = cjson.decode(redis.call('HGET', W, 'spec'))
local leaves = {}
local function collect(i)
  local node = spec[i]
  if node.k == 't' then leaves[#leaves + 1] = i return end
  for _, ch in ipairs(node.c) do
    if WF_FAILED[redis.call('HGET', W, 's'..ch) or ''] then collect(ch) end
  end
end
collect(1)
for _, i in ipairs(leaves) do
  local id = wid..'-'..i
  if redis.call('EXISTS', P..'task:'..id) == 0 then return {0, 'expired: its task '..id..' is gone'} end
end
for _, i in ipairs(leaves) do
  local id = wid..'-'..i
  requeue_one(id, now, maxlen)
  redis.call('ZADD', P..'scheduled', now, id)
  if redis.call('HGET', W, 's'..i) ~= 'running' then wf_reopen(W, wid, spec, i, now) end
end
wf_event(maxlen, wid, 'running', now)
return {1, #leaves}
"""


# --- periodic schedules (taskq.schedules) -------------------------------------------
# sched:<name> holds a schedule: spec (its definition as JSON), ver (a hash of it), source (code |
# api), paused (1 | 0), next_at (ms), last_at (ms), last_task_id, runs, dropped. The 'schedules'
# sorted set holds every name by next_at; paused ones at +inf, so the tick loop never sees them.

# Add or update a schedule. mode 'create' refuses an existing name; mode 'code' (a worker's
# code-declared schedules) keeps next_at when the definition is unchanged and replaces it otherwise.
# ARGV: prefix, name, spec, ver, source, next_at, paused, mode, now.
# Returns 1 created, 2 unchanged, 3 replaced, 0 exists (mode 'create').
SCHED_UPSERT = r"""
local P, name, spec, ver, source, next_at, paused, mode, now =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local key = P..'sched:'..name
local cur = redis.call('HMGET', key, 'ver', 'paused')
if cur[1] then
  if mode == 'create' then return 0 end
  if cur[1] == ver then
    redis.call('HSET', key, 'source', source)
    return 2
  end
  redis.call('HSET', key, 'spec', spec, 'ver', ver, 'source', source, 'next_at', next_at, 'updated_at', now)
  redis.call('ZADD', P..'schedules', cur[2] == '1' and '+inf' or next_at, name)
  return 3
end
redis.call('HSET', key, 'name', name, 'spec', spec, 'ver', ver, 'source', source, 'paused', paused,
  'next_at', next_at, 'runs', 0, 'dropped', 0, 'created_at', now, 'updated_at', now)
redis.call('ZADD', P..'schedules', paused == '1' and '+inf' or next_at, name)
return 1
"""

# Claim a schedule's due ticks: compare-and-set next_at (and the definition's ver), and create each
# tick's task exactly as CREATE_SCHEDULED does, due now in 'scheduled' for a scheduler to produce.
# A tick's task id comes from (name, tick), so an existing record is never created twice.
# ARGV: prefix, name, expected next_at, following next_at, ver, maxlen, now, dropped, task, args,
#   kwargs, max_retries, timeout, then per tick (stride 3): task id, tick (seconds), tick (ms).
# Returns how many tasks were created, or -1 when not claimed (changed, paused, deleted, or claimed).
SCHED_CLAIM = COMMON + r"""
local name, now = ARGV[2], ARGV[7]
local key = P..'sched:'..name
local cur = redis.call('HMGET', key, 'next_at', 'ver', 'paused')
if not cur[1] then
  redis.call('ZREM', P..'schedules', name)
  return -1
end
if cur[3] == '1' or cur[1] ~= ARGV[3] or cur[2] ~= ARGV[5] then return -1 end
redis.call('HSET', key, 'next_at', ARGV[4])
redis.call('ZADD', P..'schedules', ARGV[4], name)
local created = 0
local last_id, last_tick = nil, nil
for i = 14, #ARGV, 3 do
  local id, tick = ARGV[i], ARGV[i+1]
  local tkey = P..'task:'..id
  if redis.call('EXISTS', tkey) == 0 then
    create(tkey, id, ARGV[9], ARGV[10], ARGV[11], now, ARGV[12], ARGV[13], 0)
    redis.call('HSET', tkey, 'eta', tick)
    redis.call('ZADD', P..'scheduled', now, id)
    event(ARGV[6], id, 'queued', ARGV[9], '', now)
    created = created + 1
  end
  last_id, last_tick = id, ARGV[i+2]
end
if last_id then redis.call('HSET', key, 'last_at', last_tick, 'last_task_id', last_id) end
redis.call('HINCRBY', key, 'runs', created)
redis.call('HINCRBY', key, 'dropped', tonumber(ARGV[8]))
return created
"""

# Pause (next due +inf) or resume (from the given next tick) a schedule.
# ARGV: prefix, name, paused (1 | 0), next_at. Returns 1, or 0 if there is no such schedule.
SCHED_STATE = r"""
local P, name = ARGV[1], ARGV[2]
local key = P..'sched:'..name
local paused = redis.call('HGET', key, 'paused')
if not paused then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', key, 'paused', '1')
  redis.call('ZADD', P..'schedules', '+inf', name)
elseif paused == '1' then
  redis.call('HSET', key, 'paused', '0', 'next_at', ARGV[4])
  redis.call('ZADD', P..'schedules', ARGV[4], name)
end
return 1
"""

# A run started by hand becomes the schedule's last run. ARGV: prefix, name, at (ms), task id.
SCHED_NOTE = r"""
local key = ARGV[1]..'sched:'..ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'last_at', ARGV[3], 'last_task_id', ARGV[4])
return 1
"""


# Purge one finished task (taskq.bulk): its record and its index entries, if it is in one of the
# given states and finished before the cutoff. An entry whose record expired leaves the index it
# was found in. ARGV: prefix, id, cutoff (epoch seconds), states (comma separated), that index.
# Returns 1 purged, 0 not (another state, finished later, or already gone).
PURGE = r"""
local P, id = ARGV[1], ARGV[2]
local key = P..'task:'..id
local cur = redis.call('HMGET', key, 'status', 'finished_at', 'task')
if not cur[1] then
  redis.call('ZREM', ARGV[5], id)
  redis.call('ZREM', P..'idx:all', id)
  return 0
end
if not string.find(','..ARGV[4]..',', ','..cur[1]..',', 1, true) then return 0 end
if not tonumber(cur[2] or '') or tonumber(cur[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('DEL', key)
redis.call('ZREM', P..'idx:all', id)
redis.call('ZREM', P..'idx:state:'..cur[1], id)
if cur[3] then redis.call('ZREM', P..'idx:task:'..cur[3], id) end
redis.call('ZREM', P..'scheduled', id)
redis.call('ZREM', P..'scheduling', id)
return 1
"""
