-- limits.lua (beyond Carmine): rate and concurrency limits, enforced by the
-- poll on the server's clock (docs/protocol.md §19). Composed after
-- outcome.lua into dequeue.lua, renew.lua, delete.lua and limits-set.lua.
-- Nothing here reads a key unless the queue's features hash says it uses
-- limits (feature_used('limits'), set by limits-set.lua).
--
-- Rate: GCRA. A rate of n per period with burst b allows a hand-out when
-- tat - now <= tau, where t = period / n is the time one token takes and
-- tau = b * t; the hand-out moves tat to max(tat, now) + t. tat is kept in
-- µs, in slot-counts 'tq' for the queue (beside its slot count 'q', read
-- and written with it) and in rate-tat 'k:<key>' per limit key.
-- A message refused by its key's rate reserves that key's next token
-- (tat moves on as if it were handed out; rate-tat 'r:<mid>' marks the
-- reservation, and slot-counts 'nr' counts the marks) and waits in due until
-- the token comes due, so that messages of one key waiting on its rate
-- are each woken once, at their own token. A message refused by the
-- queue's rate (or its concurrency) stays first in line and the call ends
-- with a sleep step that ends when the token comes due: nothing of the
-- queue could be handed out before.
--
-- Concurrency: a hand-out takes a slot, slots['h:<mid>'] = '<key>' ('' for
-- none), counted in slot-counts 'q' (and 'k:<key>' when the queue has a
-- per-key limit and the message a key). The outcome frees it, as does the
-- poll's wake of its due entry once its lock ran out without one (the
-- process died), a collection, and a delete. The slot's liveness is its
-- message's lock (locks, and its due entry): the slot holds no expiry of
-- its own, so a renewal does not touch it. A message refused for want
-- of a slot of its key is parked: a member '<key>\0<seq>\0<mid>' of
-- parked (FIFO per key by lexical order) and slots['p:<mid>'] naming it;
-- freeing a slot of the key moves the first parked id of the key back to
-- be handed out, first in line, and wakes a sleeper.
--
-- Gathered state. A call reads each field of slot-counts, rate-tat and
-- slots it needs once, keeps what it changes in lim (below), and writes
-- it when outcome.lua's flush_gathered runs (limits_flush): one HSET (and
-- one HDEL) per hash, one ZADD of rate-keys, with the net result of all
-- its hand-outs and outcomes, which is the state the writes one by one
-- would leave. Nothing else writes these fields within the call, and every
-- read of them in the call goes through lim, so the call sees its own
-- writes. A hand-out of a message whose slot the call does not know
-- counts a slot at once and checks, with one HMGET for all such hand-outs
-- (lim.resolve; one HSETNX, which writes the slot too, when there is one;
-- without a limit per key, where every slot is '', the HSET that writes
-- them, by the number of fields it added), whether the message held one
-- already (its lock ran out before its wake): such a slot is kept, its
-- count given back, before any refusal for want of a slot and before the
-- writes.

-- limits_deferred, set by a poll call from its outcomes to its end, holds
-- the writes back until the call's last flush: its outcomes and its
-- hand-outs then write each hash once together.
local limits_deferred = false

-- limits_wake is set when a freed slot may let a sleeper hand something
-- out: the calling script wakes one.
local limits_wake = false

-- The functions the scripts call, made by limits_load (nil before).
local limits_admit, limits_park, limits_reserve, limits_take, limits_migrate, limits_unkey

-- limits_load makes the functions below, and the hooks of outcome.lua
-- (ext.limits_freed, ext.limits_flush, ext.limits_prefetch): once a call,
-- only in a call on a queue that uses limits (below) and in
-- limits-set.lua. Every function is a new closure at each call (Lua
-- 5.1), and binding each upvalue walks the list of the script's upvalues
-- bound before it, some 200 long at a composition's end: made at the top
-- level, limits.lua's closures cost a poll some 80k instructions, limits
-- or none. Made here, they bind limits_load's own locals and arguments,
-- a short list, and limits_load binds only the few locals above; the
-- script's keys and functions they use come as its arguments (under the
-- same names).
local function limits_load(K_FEATURES, K_LIMITS, K_LIMIT_KEY, K_PARKED, K_RATE_KEYS, K_RATE_TAT, K_SLOTS,
    K_SLOT_COUNTS, K_UDTS, OUTCOME_ARGS, UNPACK_MAX, call_each, ext, features, feature_used,
    message_status, push_ready, server_now, tagged_get)
  -- (made by limits_more, below)
  local limits_more, limits_key_of

  -- The queue's limits, read once per call: false for none.
  local limits_conf = nil

  -- lim is the call's gathered state:
  --   held[mid]  slots field 'h:<mid>' as the call has it: the key the slot
  --              counts under (false: absent; nil: unread), and held_w[mid]
  --              whether the call wrote it (kept by id, so that the hot path
  --              builds no field name)
  --   pmark[mid] slots field 'p:<mid>' likewise, and pmark_w[mid]
  --   counts[f]  slot-counts field f (a number) as the call has it
  --   deltas[f]  the call's change of an unread slot-counts field
  --   counts_w[f] f was written by the call
  --   tats[f]    rate-tat field f ('q', 'k:<key>', 'nr'), a number (false:
  --              absent), and tats_w[f] whether the call wrote it
  --   rkeys[k]   rate-keys score the call wrote for key k
  --   unsure     hand-outs whose earlier slot is unknown: a list of ids
  --   dropped    ids collected, whose limit-key entry goes
  --   nparked    ZCARD parked as the call has it (nil: unread)
  --   now        the server's time in ms
  --   p          the plan limits_admit answered last: one table a call,
  --              its fields set again at each admission
  -- Those tables are made here, with limits_load's other state: it runs
  -- only in a call on a queue that uses limits (or sets them), and a
  -- function that made them at the call's first use of limits would be
  -- one closure more a call.
  -- (pmark, pmark_w, tats, tats_w and rkeys, which only limits per key
  -- and reservations use, are made by limits_more)
  local lim = {held = {}, held_w = {}, counts = {}, deltas = {}, counts_w = {}, unsure = {}, dropped = {},
    p = {key = '', slot = false, key_slot = false, held = false, q_tat = false, k_tat = false, reserved = false}}

  local function limits_cfg()
    if limits_conf == nil then
      limits_conf = false
      if feature_used('limits') then
        -- (features.limits spells them, as limits-set.lua wrote them, after
        -- '+'; after '=' in the layout before; '1' when limits-set.lua has
        -- not run, and limits holds them then)
        local spelled = features.limits_conf
        local v = {string.match(spelled, '^[+=](.-)|(.-)|(.-)|(.*)$')}
        if not v[1] then v = redis.call('hmget', K_LIMITS, 'rate', 'key-rate', 'conc', 'key-conc') end
        local c = {rate = false, key_rate = false, conc = tonumber(v[3]), key_conc = tonumber(v[4])}
        -- (the rates, '<n> <period ms> <burst>': {t = µs per token, tau =
        -- µs of burst}, false for none; parsed here, not by a function of
        -- its own, which would be one closure more a call)
        for i = 1, 2 do
          local n, p, b = string.match(v[i] or '', '^(%d+) (%d+) (%d+)$')
          n, p, b = tonumber(n), tonumber(p), tonumber(b)
          if n and n > 0 and p > 0 then
            local t = math.ceil(p * 1000 / n)
            if i == 1 then c.rate = {t = t, tau = b * t} else c.key_rate = {t = t, tau = b * t} end
          end
        end
        if c.conc and c.conc <= 0 then c.conc = nil end
        if c.key_conc and c.key_conc <= 0 then c.key_conc = nil end
        if c.rate or c.key_rate or c.conc or c.key_conc then
          limits_conf = c
          if string.byte(spelled, 1) ~= 43 then -- (not '+': a queue set up before)
            limits_more()
            limits_migrate()
            if not c.key_conc then limits_unkey() end
            redis.call('hset', K_FEATURES, 'limits',
              '+' .. (v[1] or '') .. '|' .. (v[2] or '') .. '|' .. (v[3] or '') .. '|' .. (v[4] or ''))
          end
        end
      end
      -- (only a limit per key parks: without one, none is parked, and
      -- lim.parked, made by limits_more, is never needed)
      if not (limits_conf and limits_conf.key_conc) then lim.nparked = 0 end
    end
    return limits_conf
  end

  -- lim.read_q reads the queue's own slot-counts fields, its count 'q',
  -- its rate's tat 'tq' and the reservations' count 'nr', in one HMGET,
  -- once per call.
  function lim.read_q()
    limits_cfg() -- (which moves a queue set up before to this layout)
    local v = redis.call('hmget', K_SLOT_COUNTS, 'q', 'tq', 'nr')
    local counts, deltas = lim.counts, lim.deltas
    if counts.q == nil then counts.q, deltas.q = (tonumber(v[1]) or 0) + (deltas.q or 0), nil end
    if counts.tq == nil then counts.tq = tonumber(v[2]) or 0 end
    if counts.nr == nil then counts.nr = tonumber(v[3]) or 0 end
  end

  -- lim.count answers slot-counts field f.
  function lim.count(f)
    local v = lim.counts[f]
    if v == nil then
      if f == 'q' then
        lim.read_q()
        return lim.counts.q
      end
      v = (tonumber(redis.call('hget', K_SLOT_COUNTS, f)) or 0) + (lim.deltas[f] or 0)
      lim.counts[f], lim.deltas[f] = v, nil
    end
    return v
  end

  -- lim.add changes slot-counts field f by d.
  function lim.add(f, d)
    if lim.counts[f] ~= nil then
      lim.counts[f] = lim.counts[f] + d
    else
      lim.deltas[f] = (lim.deltas[f] or 0) + d
    end
    lim.counts_w[f] = true
  end

  -- lim.resolve checks the unsure hand-outs (lim, above): a message that
  -- held a slot already keeps it, with the key it was taken under, and the
  -- slot its hand-out counted is given back.
  function lim.resolve()
    local fr = lim.freeing
    if fr and #fr > 0 then
      -- (the slots freed below the limit, limits_freed: one HDEL, whose
      -- answer is how many were held)
      lim.freeing = nil
      local gone = 0
      for i = 1, #fr, UNPACK_MAX do
        gone = gone + redis.call('hdel', K_SLOTS, unpack(fr, i, math.min(i + UNPACK_MAX - 1, #fr)))
      end
      if gone > 0 then lim.add('q', -gone) end
    end
    local mids = lim.unsure
    local n = #mids
    if n == 0 then return end
    lim.unsure = {} -- (mids, read below, stays whole)
    local c = limits_conf
    if c and not c.key_conc then
      -- Without a limit per key every slot counts under '' (limits_unkey):
      -- the slots are written here, and HSET's answer, the fields it added,
      -- tells how many of them were held already, whose counts go back.
      local set = {}
      for i = 1, n do
        local mid = mids[i]
        if lim.held[mid] == '' then
          set[#set + 1] = 'h:' .. mid
          set[#set + 1] = ''
          lim.held_w[mid] = nil
        end
      end
      local added = 0
      for i = 1, #set, UNPACK_MAX do
        added = added + redis.call('hset', K_SLOTS, unpack(set, i, math.min(i + UNPACK_MAX - 1, #set)))
      end
      if added < #set / 2 then lim.add('q', added - #set / 2) end
      return
    end
    local held
    if n == 1 then
      -- (one: written at once unless held, which it then reads)
      local mid = mids[1]
      local key = lim.held[mid]
      if not key then return end
      if redis.call('hsetnx', K_SLOTS, 'h:' .. mid, key) == 1 then
        lim.held_w[mid] = nil
        return
      end
      held = {redis.call('hget', K_SLOTS, 'h:' .. mid)}
    else
      local fields = {}
      for i = 1, n do fields[i] = 'h:' .. mids[i] end
      held = redis.call('hmget', K_SLOTS, unpack(fields))
    end
    for i = 1, n do
      local mid = mids[i]
      local key = lim.held[mid]
      if held[i] and key then
        lim.add('q', -1)
        if key ~= '' then lim.add('k:' .. key, -1) end
        lim.held[mid], lim.held_w[mid] = held[i], true
      end
    end
  end

  -- lim.flush_hash writes the fields of written (a set) from values to hash:
  -- one HSET of those to keep, one HDEL of those gone (false, or a number
  -- not above 0 when numbers). With prefix, written and values are by id,
  -- and the fields prefix .. id (the slots fields, lim.held and lim.pmark).
  function lim.flush_hash(hash, written, values, numbers, prefix, set, del)
    for f in pairs(written) do
      local v = values[f]
      if prefix then f = prefix .. f end
      if v and not (numbers and v <= 0) then
        set[#set + 1] = f
        -- (a time in µs as an integer: tostring would round it)
        set[#set + 1] = numbers and string.format('%.0f', v) or v
      else
        del[#del + 1] = f
      end
    end
    if hash then
      if #set > 0 then call_each('hset', hash, set) end
      if #del > 0 then call_each('hdel', hash, del) end
    end
  end

  -- limits_flush writes the call's gathered state (outcome.lua's
  -- flush_gathered calls it). A call that wrote a key's tat also drops up
  -- to 20 keys whose tat passed (once per call): they read as absent then.
  -- (A set of the call's written is made anew only when it held some.)
  ext.limits_flush = function()
    if limits_deferred then return end
    lim.resolve()
    local pw = lim.pmark_w
    if next(lim.held_w) or (pw and next(pw)) then
      local set, del = {}, {}
      local hash = K_SLOTS
      if pw then hash = nil end
      lim.flush_hash(hash, lim.held_w, lim.held, false, 'h:', set, del)
      if pw then
        lim.flush_hash(K_SLOTS, pw, lim.pmark, false, 'p:', set, del)
        lim.pmark_w = {}
      end
      lim.held_w = {}
    end
    if next(lim.deltas) then
      local unread = {}
      for f in pairs(lim.deltas) do unread[#unread + 1] = f end
      limits_more()
      lim.read_counts(unread)
    end
    if next(lim.counts_w) then
      local cw = lim.counts_w
      lim.flush_hash(K_SLOT_COUNTS, cw, lim.counts, true, nil, {}, {})
      for f in pairs(cw) do cw[f] = nil end -- (emptied in place: no new table)
    end
    if not lim.rkeys then
      -- (none of the below without limits_more)
    elseif next(lim.rkeys) and not lim.trimmed then
      lim.trimmed = true
      local stale, fields = {}, {}
      for _, key in ipairs(redis.call('zrangebyscore', K_RATE_KEYS, '-inf', lim.now or server_now(), 'LIMIT', 0, 20)) do
        if not lim.rkeys[key] then
          stale[#stale + 1] = key
          fields[#fields + 1] = 'k:' .. key
          lim.tats['k:' .. key], lim.tats_w['k:' .. key] = false, nil
        end
      end
      if #stale > 0 then
        redis.call('hdel', K_RATE_TAT, unpack(fields))
        redis.call('zrem', K_RATE_KEYS, unpack(stale))
      end
    end
    if lim.tats_w and next(lim.tats_w) then
      lim.flush_hash(K_RATE_TAT, lim.tats_w, lim.tats, true, nil, {}, {})
      lim.tats_w = {}
    end
    if lim.rkeys and next(lim.rkeys) then
      local scores = {}
      for key, at in pairs(lim.rkeys) do
        scores[#scores + 1] = at
        scores[#scores + 1] = key
      end
      call_each('zadd', K_RATE_KEYS, scores)
      lim.rkeys = {}
    end
    local d = lim.dropped
    if #d > 0 then
      call_each('hdel', K_LIMIT_KEY, d)
      for i = #d, 1, -1 do d[i] = nil end
    end
  end

  -- limits_prefetch reads the slots of the outcomes in ARGV from index first
  -- on (n groups, the first skip answered from a receipt), in one HMGET.
  ext.limits_prefetch = function(first, n, skip)
    if n - skip < 2 or lim.count('q') <= 0 then return end
    -- (without a limit per key, the outcomes' HDEL is their read:
    -- limits_freed)
    local c = limits_conf
    if c and not c.key_conc then return end
    local held, mids, fields = lim.held, {}, {}
    for i = skip, n - 1 do
      local mid = ARGV[first + OUTCOME_ARGS * i]
      if held[mid] == nil then
        mids[#mids + 1] = mid
        fields[#fields + 1] = 'h:' .. mid
      end
    end
    for i = 1, #fields, UNPACK_MAX do
      local last = math.min(i + UNPACK_MAX - 1, #fields)
      local got = redis.call('hmget', K_SLOTS, unpack(fields, i, last))
      for j = i, last do
        if held[mids[j]] == nil then held[mids[j]] = got[j - i + 1] end
      end
    end
  end

  -- lim.free frees the slot mid holds (held: the key it counts under).
  function lim.free(mid, held, now)
    lim.held[mid], lim.held_w[mid] = false, true
    local c = limits_conf
    if c == nil then c = limits_cfg() end
    local q = lim.counts.q
    if q == nil then q = lim.count('q') end
    if c and c.conc and q >= c.conc then limits_wake = true end
    lim.counts.q, lim.counts_w.q = q - 1, true
    if held ~= '' then
      lim.add('k:' .. held, -1)
      limits_more()
      if lim.unpark(held, now) then limits_wake = true end
    end
  end

  -- The hook of outcome.lua: an outcome (any, once its lock is proven) or a
  -- collection frees mid's slot; a release also refunds its tokens; an
  -- 'expired' lock (the poll's wake) frees the slot alone; a collection
  -- (a deleted or collected id) also drops mid's parked entry, reservation
  -- and limit key. now (ms), when the caller knows it, spares a TIME.
  ext.limits_freed = function(mid, why, now)
    local l = lim
    if not l.now then l.now = now or server_now() end
    local held = l.held[mid]
    local gone = false
    if held == nil then
      local c = limits_conf
      if c == nil then c = limits_cfg() end
      if c and not c.key_conc then
        -- (without a limit per key every slot is '', limits_unkey: the
        -- slot's HDEL is its read as well as its write, its answer
        -- telling whether it was held. Below the queue's limit, where
        -- the count need not be exact, the call's HDELs are one, sent by
        -- lim.resolve, which gives their count back; at the limit, at
        -- once, so that the count is exact and the wake is owed.)
        local q = l.counts.q or l.count('q')
        if c.conc and q >= c.conc and l.freeing then
          l.resolve() -- (the count made exact first: the frees deferred)
          q = l.counts.q
        end
        if q <= 0 then
          held = false
        elseif c.conc and q >= c.conc then
          gone = true
          held = redis.call('hdel', K_SLOTS, 'h:' .. mid) == 1 and ''
        else
          local fr = l.freeing
          if not fr then
            fr = {}
            l.freeing = fr
          end
          fr[#fr + 1] = 'h:' .. mid
          held = false
        end
        l.held[mid] = held
      else
        limits_more()
        held = l.held_of(mid)
      end
    end
    if held then
      l.free(mid, held, l.now)
      if gone then l.held_w[mid] = nil end
    end
    if why == 'collect' then
      -- (each a call only when there may be something to drop)
      if l.nparked ~= 0 then
        limits_more()
        l.unpark_entry(mid)
      end
      local nr = l.counts.nr
      if nr == nil then
        l.read_q()
        nr = l.counts.nr
      end
      if nr > 0 then
        limits_more()
        l.unreserve(mid)
      end
      l.dropped[#l.dropped + 1] = mid
    elseif why == 'release' then
      limits_more()
      l.refund(mid)
    end
  end

  -- limits_admit decides whether mid may be handed out now (ms), reading
  -- only. It answers nil, nil, plan to hand it out (limits_take writes the
  -- plan; lim.p, set anew), or a refusal: 'stop' and when to poll again in
  -- ms (0: when woken) when the queue's own limits refuse (nothing of the
  -- queue may go out), 'park' when its key has no slot free, or 'rate' and
  -- when its key's token comes due (ms), reserved by limits_reserve.
  function limits_admit(mid, now)
    local c = limits_conf
    if c == nil then c = limits_cfg() end
    if not c then return nil end
    if not lim.now then lim.now = now end
    local key = ''
    if c.key_rate or c.key_conc then
      limits_more()
      key = limits_key_of(mid)
    end
    local plan = lim.p
    plan.key, plan.slot, plan.key_slot, plan.held, plan.q_tat, plan.k_tat, plan.reserved =
      key, false, false, false, false, false, false
    if c.conc or c.key_conc then
      plan.slot = true
      local kf = false
      if c.key_conc and key ~= '' then
        kf = 'k:' .. key
        plan.key_slot = true
      end
      local counts = lim.counts
      -- (kf: a key, so limits_more has run)
      if kf and counts[kf] == nil and counts.q == nil then lim.read_counts({'q', kf}) end
      local q = counts.q
      if q == nil then q = lim.count('q') end
      if (c.conc and q >= c.conc) or (kf and lim.count(kf) >= c.key_conc) then
        -- (exact counts first, then whether mid holds a slot already: it
        -- keeps it, and needs none free)
        lim.resolve()
        limits_more()
        plan.held = lim.held_of(mid)
        if not plan.held then
          if c.conc and lim.count('q') >= c.conc then return 'stop', 0 end
          if kf and lim.count(kf) >= c.key_conc then return 'park', nil, plan end
        end
      end
    end
    local now_us = now * 1000
    local r = c.rate
    if r then
      local tat = lim.counts.tq
      if tat == nil then
        lim.read_q()
        tat = lim.counts.tq
      end
      if not tat or tat <= 0 then tat = now_us end
      if tat - now_us > r.tau then return 'stop', math.ceil((tat - r.tau) / 1000) end
      if tat < now_us then tat = now_us end
      plan.q_tat = tat + r.t
    end
    if c.key_rate and key ~= '' then
      local reserved_at = nil
      if (lim.tat('nr') or 0) > 0 then reserved_at = tonumber(redis.call('hget', K_RATE_TAT, 'r:' .. mid)) end
      if reserved_at then
        -- (met before its token: on a list by a Carmine enqueue or a lap)
        plan.reserved = true
        if now < reserved_at then return 'rate', reserved_at, plan end
      else
        local ok, v = lim.gcra('k:' .. key, c.key_rate, now_us)
        if not ok then return 'rate', math.ceil(v / 1000), plan end
        plan.k_tat = v
      end
    end
    return nil, nil, plan
  end

  -- limits_take writes what limits_admit planned for mid's hand-out.
  function limits_take(mid, plan)
    local l = lim
    if plan.q_tat then l.counts.tq, l.counts_w.tq = plan.q_tat, true end
    if plan.k_tat then l.set_key_tat(plan.key, plan.k_tat) end
    if plan.reserved then l.unreserve(mid) end
    if plan.slot and not plan.held then
      local key = ''
      if plan.key_slot then key = plan.key end
      local counts = l.counts
      if counts.q ~= nil then
        counts.q, l.counts_w.q = counts.q + 1, true
      else
        l.add('q', 1)
      end
      if key ~= '' then l.add('k:' .. key, 1) end
      -- (a slot the call does not know is checked at the flush)
      if l.held[mid] == nil then l.unsure[#l.unsure + 1] = mid end
      if l.nparked ~= 0 then
        limits_more()
        l.unpark_entry(mid)
      end
      l.held[mid], l.held_w[mid] = key, true
    end
  end

  -- limits_more makes the functions only queues with limits per key, a
  -- release, a hand-out at a limit (whether it holds a slot already), a
  -- refusal, a layout before or limits-set.lua use (once a call): a call
  -- of mq-limits' setting below its bounds makes none of them.
  function limits_more()
    if lim.gcra then return end
    lim.pmark, lim.pmark_w, lim.tats, lim.tats_w, lim.rkeys = {}, {}, {}, {}, {}
    -- limits_migrate moves the queue's own rate state from where the layout
    -- before kept it, rate-tat 'q' (its tat) and 'nr' (the reservations'
    -- count), to slot-counts 'tq' and 'nr' (§19), unless those are there
    -- already. A queue whose features.limits starts with '+' is in the
    -- layout of now; limits-set.lua and the first limits_cfg of a call on
    -- any other (a queue set up before) call it, and spell features.limits
    -- with '+' then, so that it runs once.
    function limits_migrate()
      local v = redis.call('hmget', K_RATE_TAT, 'q', 'nr')
      if v[1] or v[2] then
        if v[1] then redis.call('hsetnx', K_SLOT_COUNTS, 'tq', v[1]) end
        if v[2] then redis.call('hsetnx', K_SLOT_COUNTS, 'nr', v[2]) end
        redis.call('hdel', K_RATE_TAT, 'q', 'nr')
      end
    end

    -- limits_unkey makes every slot held count under no key, and drops the
    -- counts per key: setting limits without a concurrency limit per key
    -- calls it (limits-set.lua, and limits_cfg moving a queue set up
    -- before), so that without one no slot counts under a key (lim.resolve
    -- relies on it).
    -- (HSCAN, not HKEYS or HGETALL: no command beyond the ACL list)
    function limits_unkey()
      local drop, set = {}, {}
      for _, w in ipairs({{K_SLOT_COUNTS, 'k:*', drop}, {K_SLOTS, 'h:*', set}}) do
        local cursor = '0'
        repeat
          local r = redis.call('hscan', w[1], cursor, 'MATCH', w[2], 'COUNT', 1000)
          cursor = r[1]
          for i = 1, #r[2], 2 do
            if w[3] == drop then
              drop[#drop + 1] = r[2][i]
            elseif r[2][i + 1] ~= '' then
              set[#set + 1] = r[2][i]
              set[#set + 1] = ''
            end
          end
        until cursor == '0'
      end
      if #drop > 0 then call_each('hdel', K_SLOT_COUNTS, drop) end
      if #set > 0 then call_each('hset', K_SLOTS, set) end
    end

    -- lim.held_of answers mid's slots field 'h:<mid>'. None exists while
    -- slot-counts 'q' is 0: every slot taken counts there, and every slot
    -- freed.
    function lim.held_of(mid)
      local v = lim.held[mid]
      if v == nil then
        if lim.count('q') <= 0 then
          v = false
        else
          v = redis.call('hget', K_SLOTS, 'h:' .. mid)
        end
        lim.held[mid] = v
      end
      return v
    end

    -- lim.tat answers a tat as a number, nil for none: rate-tat field f
    -- ('k:<key>'), or for f 'tq' (the queue's) and 'nr' (the reservations'
    -- count) the slot-counts field, read with the queue's count.
    function lim.tat(f)
      if f == 'tq' or f == 'nr' then
        local v = lim.counts[f]
        if v == nil then
          lim.read_q()
          v = lim.counts[f]
        end
        if v > 0 then return v end
        return nil
      end
      local v = lim.tats[f]
      if v == nil then
        v = tonumber(redis.call('hget', K_RATE_TAT, f)) or false
        lim.tats[f] = v
      end
      return v or nil
    end

    -- lim.parked answers how many ids are parked (ZCARD once per call). Only
    -- a limit per key parks, and setting limits empties parked: without one,
    -- none is.
    function lim.parked()
      if lim.nparked == nil then
        local c = limits_cfg()
        if c and c.key_conc then
          lim.nparked = redis.call('zcard', K_PARKED)
        else
          lim.nparked = 0
        end
      end
      return lim.nparked
    end

    -- lim.unpark_entry drops mid's parked entry, if any.
    function lim.unpark_entry(mid)
      if (lim.nparked or lim.parked()) > 0 then
        limits_more()
        local member = lim.pmark_of(mid)
        if member then
          lim.nparked = lim.nparked - redis.call('zrem', K_PARKED, member)
          lim.pmark[mid], lim.pmark_w[mid] = false, true
        end
      end
    end

    -- lim.read_counts reads the unread slot-counts fields of list in one
    -- HMGET, with the queue's own ('q', 'tq', 'nr') when unread: a call
    -- reads those once, with the first field it needs.
    function lim.read_counts(list)
      local want = {}
      local counts = lim.counts
      for _, f in ipairs(list) do
        if counts[f] == nil then want[#want + 1] = f end
      end
      if counts.q == nil then
        -- (the queue's own fields with them: lim.read_q)
        limits_cfg()
        for _, f in ipairs(want) do
          if f == 'q' then
            want[#want + 1] = 'tq'
            want[#want + 1] = 'nr'
            break
          end
        end
      end
      for i = 1, #want, UNPACK_MAX do
        local part = {unpack(want, i, math.min(i + UNPACK_MAX - 1, #want))}
        for j, v in ipairs(redis.call('hmget', K_SLOT_COUNTS, unpack(part))) do
          local f = part[j]
          lim.counts[f], lim.deltas[f] = (tonumber(v) or 0) + (lim.deltas[f] or 0), nil
        end
      end
    end

    -- lim.pmark_of answers mid's slots field 'p:<mid>'.
    function lim.pmark_of(mid)
      local v = lim.pmark[mid]
      if v == nil then
        v = redis.call('hget', K_SLOTS, 'p:' .. mid)
        lim.pmark[mid] = v
      end
      return v
    end

    function lim.set_tat(f, v)
      if f == 'tq' or f == 'nr' then
        lim.counts[f], lim.counts_w[f] = v, true
        return
      end
      lim.tats[f] = v
      lim.tats_w[f] = true
    end

    -- lim.set_key_tat writes a key's tat (µs) and its rate-keys entry.
    function lim.set_key_tat(key, tat)
      lim.set_tat('k:' .. key, tat)
      lim.rkeys[key] = math.ceil(tat / 1000)
    end

    -- limits_key_of answers mid's limit key, '' for none (a stale entry, left
    -- by an earlier message of the id, is none: tagged_get).
    function limits_key_of(mid)
      return tagged_get(K_LIMIT_KEY, mid, redis.call('hget', K_UDTS, mid)) or ''
    end

    -- lim.gcra answers whether the rate r allows a hand-out now (µs) under
    -- field, and the new tat if so, else when the token comes due (µs).
    function lim.gcra(field, r, now_us)
      local tat = lim.tat(field) or now_us
      if tat - now_us > r.tau then return false, tat - r.tau end
      if tat < now_us then tat = now_us end
      return true, tat + r.t
    end

    -- lim.unpark moves the first parked id of key that is still queued
    -- back to be handed out, first in line, and answers whether it did.
    function lim.unpark(key, now)
      for _ = 1, 10 do
        if lim.parked() <= 0 then return false end
        -- (ZRANGE BYLEX, Redis 6.2, as BLMOVE: no command beyond the ACL list)
        local first = redis.call('zrange', K_PARKED, '[' .. key .. '\0', '(' .. key .. '\1', 'BYLEX', 'LIMIT', 0, 1)[1]
        if not first then return false end
        redis.call('zrem', K_PARKED, first)
        lim.nparked = lim.nparked - 1
        local mid = string.match(first, '^.-%z%d+%z(.*)$')
        lim.pmark[mid], lim.pmark_w[mid] = false, true
        local base, in_backoff = message_status(mid, now)
        if base == 'queued' and not in_backoff then
          push_ready('rpush', mid)
          return true
        end
      end
      return false
    end

    -- lim.unreserve drops mid's reservation of a key token, if any.
    function lim.unreserve(mid)
      if (lim.tat('nr') or 0) <= 0 then return end
      if redis.call('hdel', K_RATE_TAT, 'r:' .. mid) == 1 then
        lim.set_tat('nr', lim.tat('nr') - 1)
      end
    end

    -- lim.refund gives back the rate tokens a released hand-out took: it
    -- was never handled.
    function lim.refund(mid)
      local c = limits_cfg()
      if not c then return end
      if c.rate then
        local tat = lim.tat('tq')
        if tat then lim.set_tat('tq', tat - c.rate.t) end
      end
      if c.key_rate then
        local key = limits_key_of(mid)
        if key ~= '' then
          local tat = lim.tat('k:' .. key)
          if tat then lim.set_key_tat(key, tat - c.key_rate.t) end
        end
      end
    end

    -- limits_reserve reserves mid's key token that comes due at at_ms: the
    -- key's tat moves on by one token, as if mid were handed out then.
    function limits_reserve(mid, plan, at_ms, now)
      if plan.reserved then return end
      local c = limits_cfg()
      lim.set_key_tat(plan.key, (lim.tat('k:' .. plan.key) or now * 1000) + c.key_rate.t)
      redis.call('hset', K_RATE_TAT, 'r:' .. mid, at_ms)
      lim.set_tat('nr', (lim.tat('nr') or 0) + 1)
    end

    -- limits_park parks mid (refused for want of a slot of its key).
    function limits_park(mid, key)
      if lim.parked() > 0 and lim.pmark_of(mid) then return end
      local seq = redis.call('hincrby', K_SLOT_COUNTS, 'seq', 1)
      local member = key .. '\0' .. string.format('%016d', seq) .. '\0' .. mid
      redis.call('zadd', K_PARKED, 0, member)
      lim.nparked = lim.parked() + 1
      lim.pmark[mid], lim.pmark_w[mid] = member, true
    end
  end
  ext.limits_more = limits_more
end

-- limits_load_q makes the functions of a queue whose limits are its own
-- alone (no rate and no concurrency limit per key; conc the queue's
-- concurrency limit or nil, a rate of t µs a token and tau µs of burst,
-- or t nil), in the layout of now: the state below and four closures
-- instead of limits_load's dozen and its tables by id. Nothing parks and
-- nothing reserves a key's token then (no limit per key refuses), so
-- limits_admit refuses with 'stop' alone, and every slot is '' (setting
-- such limits made it so, limits_unkey): the hand-outs' HSET and the
-- frees' HDEL are their own reads, their answers correcting the count.
-- The state and writes are those of limits_load's path (§19), which
-- TestLimits* check on both.
local function limits_load_q(K_LIMIT_KEY, K_RATE_TAT, K_SLOTS, K_SLOT_COUNTS, UNPACK_MAX, call_each, ext, conc, t, tau)
  -- q, tq, nr: slot-counts' fields as the call has them (q nil: unread),
  -- and whether the call changed them; freeing the fields of the slots
  -- freed, whose HDEL waits (below the queue's limit) for the next
  -- admission at the limit or the flush; taking the hand-outs' slots (a
  -- field and '' each); dropped the ids collected (limit-key) and
  -- unres the marks of their reservations (only while nr is above 0:
  -- marks left by a rate per key since lifted); last the id freed last, which its
  -- collection then does not free again; held, set by limits_admit, that
  -- the id admitted at the limit holds a slot already (it keeps it);
  -- plan_tq the tat its hand-out writes.
  local q, tq, nr, q_w, tq_w, nr_w = nil, 0, 0, false, false, false
  local freeing, taking, dropped, unres = {}, {}, {}, {}
  local last, held, plan_tq = nil, false, false

  -- settle deletes the slots of freeing, then writes those of taking:
  -- HDEL answers how many were held, and HSET how many were not held
  -- already (a hand-out that held its slot still, its lock run out before
  -- its wake, keeps it and counts once), so that q is exact after.
  local function settle()
    local n = #freeing
    if n > 0 then
      local gone = 0
      for i = 1, n, UNPACK_MAX do
        gone = gone + redis.call('hdel', K_SLOTS, unpack(freeing, i, math.min(i + UNPACK_MAX - 1, n)))
      end
      freeing = {}
      if gone > 0 then q, q_w = q - gone, true end
    end
    n = #taking
    if n > 0 then
      local added = 0
      for i = 1, n, UNPACK_MAX do
        added = added + redis.call('hset', K_SLOTS, unpack(taking, i, math.min(i + UNPACK_MAX - 1, n)))
      end
      taking = {}
      if added < n / 2 then q = q + added - n / 2 end
    end
  end

  ext.limits_freed = function(mid, why)
    if why == 'collect' and mid == last then
      -- (the collection of an id whose outcome freed its slot just now)
      dropped[#dropped + 1] = mid
      if nr > 0 then unres[#unres + 1] = 'r:' .. mid end
      return
    end
    if q == nil then
      local v = redis.call('hmget', K_SLOT_COUNTS, 'q', 'tq', 'nr')
      q, tq, nr = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
    end
    if why == 'collect' then
      dropped[#dropped + 1] = mid
      if nr > 0 then unres[#unres + 1] = 'r:' .. mid end
    elseif why == 'release' and t and tq > 0 then
      tq, tq_w = tq - t, true
    end
    last = mid
    -- (none is held while q is 0; below the limit the HDEL waits; at it,
    -- the deferred ones first, then this one at once, so that the count
    -- is exact and a sleeper woken for the slot freed)
    if q <= 0 then return end
    if conc and q >= conc then
      settle()
      if q >= conc then
        if redis.call('hdel', K_SLOTS, 'h:' .. mid) == 1 then
          q, q_w = q - 1, true
          limits_wake = true
        end
        return
      end
    end
    freeing[#freeing + 1] = 'h:' .. mid
  end

  ext.limits_flush = function()
    if limits_deferred or q == nil then return end
    settle()
    if #unres > 0 then
      local gone = 0
      for i = 1, #unres, UNPACK_MAX do
        gone = gone + redis.call('hdel', K_RATE_TAT, unpack(unres, i, math.min(i + UNPACK_MAX - 1, #unres)))
      end
      unres = {}
      if gone > 0 then nr, nr_w = nr - gone, true end
    end
    if q_w or tq_w or nr_w then
      -- (a count at 0 or below goes; a time in µs as an integer:
      -- tostring would round it)
      local set, del = {}, {}
      if q_w then
        if q > 0 then set[#set + 1], set[#set + 2] = 'q', q else del[#del + 1] = 'q' end
      end
      if tq_w then
        if tq > 0 then set[#set + 1], set[#set + 2] = 'tq', string.format('%.0f', tq) else del[#del + 1] = 'tq' end
      end
      if nr_w then
        if nr > 0 then set[#set + 1], set[#set + 2] = 'nr', nr else del[#del + 1] = 'nr' end
      end
      if #set > 0 then redis.call('hset', K_SLOT_COUNTS, unpack(set)) end
      if #del > 0 then redis.call('hdel', K_SLOT_COUNTS, unpack(del)) end
      q_w, tq_w, nr_w = false, false, false
    end
    if #dropped > 0 then
      call_each('hdel', K_LIMIT_KEY, dropped)
      dropped = {}
    end
  end

  ext.limits_prefetch = nil

  limits_admit = function(mid, now)
    if not (t or conc) then return nil end -- (none: no plan)
    if q == nil then
      local v = redis.call('hmget', K_SLOT_COUNTS, 'q', 'tq', 'nr')
      q, tq, nr = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
    end
    held = false
    if conc and q >= conc then
      -- (exact counts first, then whether mid holds a slot already: it
      -- keeps it, and needs none free)
      settle()
      if q >= conc then
        held = redis.call('hexists', K_SLOTS, 'h:' .. mid) == 1
        if not held then return 'stop', 0 end
      end
    end
    if t then
      local now_us = now * 1000
      local tat = tq
      if tat <= 0 then tat = now_us end
      if tat - now_us > tau then return 'stop', math.ceil((tat - tau) / 1000) end
      if tat < now_us then tat = now_us end
      plan_tq = tat + t
    end
    return nil, nil, true
  end

  limits_take = function(mid)
    if t then tq, tq_w = plan_tq, true end
    if conc and not held then
      q, q_w = q + 1, true
      taking[#taking + 1] = 'h:' .. mid
      taking[#taking + 1] = ''
    end
  end
end

-- (dequeue.lua tells a full composition by it)
ext.limits_load = limits_load
if feature_used('limits') then
  -- A queue with limits of its own alone, in the layout of now
  -- ('+<rate>||<conc>|'), goes to limits_load_q; every other to
  -- limits_load (which limits-set.lua runs too).
  -- (the '|'s found plainly: a pattern of four lazy captures costs a call
  -- some 20k instructions, callgrind)
  local spelled = features.limits_conf
  local i = string.byte(spelled, 1) == 43 and string.find(spelled, '|', 2, true)
  local j = i and string.find(spelled, '|', i + 1, true)
  if j and j == i + 1 and string.find(spelled, '|', j + 1, true) == #spelled then
    local conc = string.sub(spelled, j + 1, -2)
    local n, p, b = string.match(string.sub(spelled, 2, i - 1), '^(%d+) (%d+) (%d+)$')
    n, p, b = tonumber(n), tonumber(p), tonumber(b)
    local t, tau = nil, nil
    if n and n > 0 and p > 0 then
      t = math.ceil(p * 1000 / n)
      tau = b * t
    end
    conc = tonumber(conc)
    if conc and conc <= 0 then conc = nil end
    limits_load_q(K_LIMIT_KEY, K_RATE_TAT, K_SLOTS, K_SLOT_COUNTS, UNPACK_MAX, call_each, ext, conc, t, tau)
  else
    limits_load(K_FEATURES, K_LIMITS, K_LIMIT_KEY, K_PARKED, K_RATE_KEYS, K_RATE_TAT, K_SLOTS,
      K_SLOT_COUNTS, K_UDTS, OUTCOME_ARGS, UNPACK_MAX, call_each, ext, features, feature_used,
      message_status, push_ready, server_now, tagged_get)
  end
end
