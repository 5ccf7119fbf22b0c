-- onecli.transport.resty_queue outside nginx: ngx.semaphore is replaced
-- by a small one driven by a scheduler of coroutines with a fake clock,
-- so that the order of the waiters, the bounds and the holders that die
-- without giving their place back are checked exactly. (The same queue in
-- a real nginx: spec/resty/production_spec.lua, "pool_size = 4 with a
-- backlog", and spec/resty/batch_spec.lua, cancel with a capped pool.)

describe("resty_queue (the pool limit of the OpenResty transport)", function()
  local queue, clock, blocked, ready

  -- the fake ngx.semaphore: wait() yields to the scheduler below
  local Sema = {}
  Sema.__index = Sema
  function Sema:post(n)
    self.count = self.count + (n or 1)
    for co, b in pairs(blocked) do
      if b.sema == self and self.count > 0 then
        self.count = self.count - 1
        blocked[co] = nil
        ready[#ready + 1] = { co = co, value = true }
      end
    end
  end
  function Sema:wait(seconds)
    if self.count > 0 then
      self.count = self.count - 1
      return true
    end
    return coroutine.yield({ sema = self, until_ = clock + seconds })
  end

  -- runs every coroutine until none can move, advancing the clock to
  -- the next timeout when all wait; or only `steps` steps
  local function run(steps)
    for _ = 1, steps or 10000 do
      if #ready > 0 then
        local r = table.remove(ready, 1)
        local ok, b = coroutine.resume(r.co, r.value)
        assert(ok, b)
        if coroutine.status(r.co) ~= "dead" and type(b) == "table" and b.sema then
          blocked[r.co] = b
        end
      else
        local next_co, at = nil, math.huge
        for co, b in pairs(blocked) do
          if b.until_ < at then next_co, at = co, b.until_ end
        end
        if not next_co then return end
        clock = at
        blocked[next_co] = nil
        ready[#ready + 1] = { co = next_co, value = nil }
      end
    end
    assert(steps, "the scheduler did not settle")
  end

  local function spawn(fn)
    local co = coroutine.create(fn)
    ready[#ready + 1] = { co = co }
    return co
  end

  local function now() return clock end

  before_each(function()
    clock, blocked, ready = 0, {}, {}
    package.loaded["onecli.transport.resty_queue"] = nil
    package.preload["ngx.semaphore"] = function()
      return { new = function(n) return setmetatable({ count = n or 0 }, Sema) end }
    end
    package.loaded["ngx.semaphore"] = nil
    queue = require("onecli.transport.resty_queue")
  end)

  after_each(function()
    package.preload["ngx.semaphore"] = nil
    package.loaded["ngx.semaphore"] = nil
    package.loaded["onecli.transport.resty_queue"] = nil
  end)

  it("is available only with ngx.semaphore", function()
    assert.is_true(queue.available())
    package.preload["ngx.semaphore"] = nil
    package.loaded["ngx.semaphore"] = nil
    package.loaded["onecli.transport.resty_queue"] = nil
    assert.is_false(require("onecli.transport.resty_queue").available())
  end)

  -- n calls that each hold a place for `hold` seconds (sleeping on a
  -- semaphore nobody posts); returns the times each got its place and ended
  local function calls(n, size, backlog, wait, hold)
    local got, ended, failed = {}, {}, {}
    for i = 1, n do
      spawn(function()
        local ok, why = queue.acquire("p", size, backlog, wait, now)
        if not ok then
          failed[i] = why .. "@" .. clock
          return
        end
        got[i] = clock
        setmetatable({ count = 0 }, Sema):wait(hold)
        ended[i] = clock
        queue.release("p")
      end)
    end
    run()
    return got, ended, failed
  end

  it("lets `size` calls hold a place, the others wait and go in their order", function()
    local got, _, failed = calls(10, 4, 100, 5, 0.2)
    assert.are.same({}, failed)
    -- rounds of 4: 0, 0.2, 0.4 -- and every connection kept working
    assert.are.same({ 0, 0, 0, 0, 0.2, 0.2, 0.2, 0.2, 0.4, 0.4 }, got)
    assert.are.same({ busy = 0, waiting = 0, size = 4, backlog = 100 }, queue.state("p"))
  end)

  it("hands each place given back to the first call waiting (first come, first served)", function()
    local order = {}
    spawn(function()
      assert(queue.acquire("p", 1, 10, 5, now))
      setmetatable({ count = 0 }, Sema):wait(1)
      queue.release("p")
    end)
    for i = 1, 5 do
      spawn(function()
        assert(queue.acquire("p", 1, 10, 5, now))
        order[#order + 1] = i
        queue.release("p")
      end)
    end
    run()
    assert.are.same({ 1, 2, 3, 4, 5 }, order)
  end)

  it("refuses a call when `backlog` calls wait already (full), at once", function()
    local _, _, failed = calls(7, 2, 3, 5, 1)
    assert.are.same({ [6] = "full@0", [7] = "full@0" }, failed)
  end)

  it("with backlog 0 a call never waits", function()
    local _, _, failed = calls(3, 2, 0, 5, 1)
    assert.are.same({ [3] = "full@0" }, failed)
  end)

  it("gives up after the time it is given (timeout), and leaves the queue", function()
    local got, _, failed = calls(3, 1, 10, 0.5, 2)
    assert.are.same({ [2] = "timeout@0.5", [3] = "timeout@0.5" }, failed)
    assert.are.same({ [1] = 0 }, got)
    assert.are.same(0, queue.state("p").waiting)
  end)

  it("a coroutine that already holds a place keeps it (a second acquire is free)", function()
    spawn(function()
      assert(queue.acquire("p", 1, 0, 1, now))
      assert(queue.acquire("p", 1, 0, 1, now))
      assert.are.equal(1, queue.state("p").busy)
      queue.release("p")
    end)
    run()
    assert.are.equal(0, queue.state("p").busy)
  end)

  it("a holder that died without giving its place back stops counting", function()
    -- it takes the place and ends (an error, a killed thread)
    spawn(function() assert(queue.acquire("p", 1, 10, 5, now)) end)
    run()
    assert.are.equal(0, queue.state("p").busy, "a dead coroutine holds nothing")
    local got = calls(1, 1, 10, 5, 0.1)
    assert.are.same({ 0 }, got)
  end)

  it("a waiter wakes to count again when a holder dies in silence", function()
    local holder = spawn(function()
      assert(queue.acquire("p", 1, 10, 5, now))
      setmetatable({ count = 0 }, Sema):wait(100)   -- never gives it back by itself
    end)
    local got
    spawn(function()
      assert(queue.acquire("p", 1, 10, 5, now))
      got = clock
      queue.release("p")
    end)
    run(3)              -- both started: one holds, one waits
    -- the holder is abandoned (as a killed light thread is: never resumed)
    blocked[holder] = nil
    queue.abandon(holder)
    run()
    assert.is_not_nil(got, "the waiter got the place")
    assert.is_true(got < 1, "at once, not after its timeout: " .. tostring(got))
  end)

  it("abandon() takes a killed waiter out of the queue", function()
    spawn(function()
      assert(queue.acquire("p", 1, 10, 5, now))
      setmetatable({ count = 0 }, Sema):wait(1)
      queue.release("p")
    end)
    local waiter = spawn(function() queue.acquire("p", 1, 10, 5, now) end)
    run(2)
    assert.are.equal(1, queue.state("p").waiting)
    blocked[waiter] = nil
    queue.abandon(waiter)
    assert.are.equal(0, queue.state("p").waiting)
    run()
    assert.are.same({ busy = 0, waiting = 0, size = 1, backlog = 10 }, queue.state("p"))
  end)

  it("keeps pools apart", function()
    spawn(function()
      assert(queue.acquire("a", 1, 0, 1, now))
      assert(queue.acquire("b", 1, 0, 1, now))
      assert.are.equal(1, queue.state("a").busy)
      assert.are.equal(1, queue.state("b").busy)
      queue.release("a")
      queue.release("b")
    end)
    run()
  end)
end)
