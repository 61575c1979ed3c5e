// driver.mjs is the BullMQ driver of the benchmark harness. It runs one
// scenario against one queue and speaks the line protocol of runDriver in
// ../driver.go, whose scenarios it copies one for one:
//
//	driver: READY                  (set-up done: queue cleared, pre-filled...)
//	orch:   GO
//	driver: MARK <name> <json>     (one or more; the orchestrator samples Redis)
//	driver: END
//
// Usage (the same flags as the Go driver):
//
//	node driver.mjs -system bullmq -scenario e2e -addr 127.0.0.1:6391 \
//	    -queue bench -n 50000 -handlers 8 -size 100 -batch 1000
//
// BullMQ settings, and why:
//   - Every job is added with removeOnComplete: true and removeOnFail: true,
//     so a handled job is deleted as it completes, as a production queue
//     that does not keep history would be set up; without it the completed
//     set and job hashes would grow for the whole run.
//   - One Queue (producer side) and one Worker (concurrency = -handlers),
//     each given the connection options {host, port}; BullMQ opens its own
//     connections from them (the Worker two: one for commands, one for its
//     blocking wait). The Worker's options carry maxRetriesPerRequest: null,
//     which BullMQ requires for blocking connections.
//   - Everything else is BullMQ's default: locks of 30 s renewed at half
//     time, the stalled-job check, the events stream, drainDelay 5 s, the
//     "bull" key prefix. Nothing that makes a job cheaper than in production
//     (no skipLockRenewal, no skipStalledCheck) is turned off.
//   - The processor is an async no-op that counts; it never fails.
//
// stdout carries only protocol lines; logs go to stderr. Any failure prints a
// message on stderr and exits non-zero.

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { performance } from 'node:perf_hooks';

// defaults are the flag defaults, the same as in the Go harness (main.go).
// -system must be bullmq and -addr must be given: an empty address is
// refused rather than taken as a default server.
const defaults = {
  system: '',
  scenario: '',
  addr: '',
  queue: 'bench',
  n: 50000,
  handlers: 1,
  size: 100,
  rate: 200,
  duration: '5s',
  batch: 1000,
  delayed: 0,
  settle: '3s',
  queues: 100,
  probes: 20,
  'probe-every': '250ms',
  'collect-timeout': '2m',
};

// scenarios are the scenarios this driver runs, as in driver.go.
const scenarios = ['enqueue-one', 'producer', 'enqueue-batch', 'e2e', 'latency', 'idle', 'redis-mem', 'queues'];

// delayedBy is how far in the future delayed jobs are due, as in driver.go:
// far beyond any measurement, so that they only wait.
const delayedByMs = 3600 * 1000;

// jobOpts are the options of every job added.
const jobOpts = { removeOnComplete: true, removeOnFail: true };

// jobName is the name given to every job; BullMQ stores it, nothing reads it.
const jobName = 'bench';

// parseFlags reads flags the way Go's flag package does: -name value,
// -name=value, with one or two dashes, stopping at "--" or the first
// argument that is not a flag.
function parseFlags(argv) {
  const a = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    if (arg === '--' || !arg.startsWith('-') || arg === '-') break;
    arg = arg.replace(/^--?/, '');
    let value;
    const eq = arg.indexOf('=');
    if (eq >= 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    } else {
      if (i + 1 >= argv.length) throw new Error(`flag needs an argument: -${arg}`);
      value = argv[++i];
    }
    if (!(arg in defaults)) throw new Error(`flag provided but not defined: -${arg}`);
    if (typeof defaults[arg] === 'number') {
      if (!/^[-+]?\d+$/.test(value)) throw new Error(`invalid value "${value}" for flag -${arg}`);
      a[arg] = Number(value);
    } else {
      a[arg] = value;
    }
  }
  a.durationMs = parseDuration(a.duration);
  a.settleMs = parseDuration(a.settle);
  a.collectTimeoutMs = parseDuration(a['collect-timeout']);
  parseDuration(a['probe-every']);
  return a;
}

// durationUnits are Go's time.ParseDuration units, in milliseconds.
const durationUnits = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

// parseDuration parses a Go duration such as "5s", "500ms" or "1m30s" and
// returns milliseconds.
function parseDuration(s) {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let ms = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    ms += Number(m[1]) * durationUnits[m[2]];
    if (re.lastIndex === s.length) return ms;
  }
  throw new Error(`invalid duration "${s}"`);
}

// parseAddr splits "host:port" (or "[v6]:port") into BullMQ connection
// options.
function parseAddr(addr) {
  if (addr === '') throw new Error('-addr is required');
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`invalid -addr "${addr}": want host:port`);
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`invalid port in -addr "${addr}"`);
  return { host, port };
}

// nowMicros is the time in microseconds since the epoch, good to a
// microsecond within this process (performance.now has sub-millisecond
// resolution), for the send times in payloads.
const nowMicros = () => (performance.timeOrigin + performance.now()) * 1000;

// cpuMicros is the user plus system CPU time of this process in
// microseconds.
function cpuMicros() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// pct is the nearest-rank percentile of sorted values, the same formula as
// pct in driver.go.
function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.trunc(sorted.length * p + 0.5) - 1;
  return sorted[Math.min(Math.max(i, 0), sorted.length - 1)];
}

// write sends one line to stdout and resolves once Node has handed it to the
// operating system, so that no line is lost when the process exits.
function write(line) {
  return new Promise((resolve, reject) => {
    process.stdout.write(line + '\n', (err) => (err ? reject(err) : resolve()));
  });
}

// stdinLines reads stdin line by line from the start, so that a GO sent before
// READY was printed is kept, not lost. next() resolves to the next line, or
// null at the end of the input.
function stdinLines() {
  const queued = [];
  const waiting = [];
  let buf = '';
  let ended = false;
  const push = (line) => (waiting.length ? waiting.shift()(line) : queued.push(line));
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      push(buf.slice(0, nl).replace(/\r$/, ''));
      buf = buf.slice(nl + 1);
    }
  });
  process.stdin.on('end', () => {
    if (buf !== '') push(buf);
    buf = '';
    ended = true;
    while (waiting.length) waiting.shift()(null);
  });
  return {
    next() {
      if (queued.length) return Promise.resolve(queued.shift());
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}

// makePayloads returns a function that builds job data: an object holding
// the time it was made (t, microseconds since the epoch) and padding (p),
// whose JSON is size bytes, or as few as the time alone takes.
function makePayloads(size) {
  const overhead = JSON.stringify({ t: Math.trunc(nowMicros()), p: '' }).length;
  const pad = 'x'.repeat(Math.max(0, size - overhead));
  return () => ({ t: Math.trunc(nowMicros()), p: pad });
}

async function main() {
  const a = parseFlags(process.argv.slice(2));
  if (a.system !== 'bullmq') throw new Error(`unknown system "${a.system}": this driver runs bullmq only`);
  if (!scenarios.includes(a.scenario)) throw new Error(`unknown scenario "${a.scenario}"`);
  if (a.batch <= 0) throw new Error('-batch must be positive');
  const conn = parseAddr(a.addr);
  const payload = makePayloads(a.size);
  const stdin = stdinLines();

  // fatal ends the run at once on an error that BullMQ reports as an event
  // rather than a rejected promise (a connection lost mid-run, a failed job).
  let closing = false;
  const fatal = (what) => (err) => {
    if (closing) return;
    console.error(`bullmq driver: ${what}: ${err?.stack ?? err}`);
    process.exit(1);
  };

  const queue = new Queue(a.queue, { connection: conn });
  queue.on('error', fatal('queue error'));
  await queue.waitUntilReady();
  // Start clean: drop whatever an earlier run left in this queue.
  await queue.obliterate({ force: true });

  // startWorker starts the one Worker with a no-op processor that calls
  // handle with each job's data as the processor starts.
  let worker = null;
  const newWorker = async (name, handle) => {
    const w = new Worker(
      name,
      async (job) => {
        handle(job.data);
      },
      { connection: { ...conn, maxRetriesPerRequest: null }, concurrency: a.handlers },
    );
    w.on('error', fatal('worker error'));
    w.on('failed', (job, err) => fatal(`job ${job?.id} failed`)(err));
    w.on('stalled', (id) => console.error(`bullmq driver: job ${id} stalled`));
    await w.waitUntilReady();
    return w;
  };
  const startWorker = async (handle) => {
    worker = await newWorker(a.queue, handle);
  };
  const stopWorker = async () => {
    closing = true;
    await worker.close();
  };

  // addBatches adds the payloads with addBulk, batch jobs per call, with
  // the given job options.
  const addBatches = async (datas, opts = jobOpts) => {
    for (let i = 0; i < datas.length; i += a.batch) {
      await queue.addBulk(datas.slice(i, i + a.batch).map((data) => ({ name: jobName, data, opts })));
    }
  };

  // prefill adds n jobs, batch by batch, as prefill in driver.go does.
  const prefill = async (n, opts = jobOpts) => {
    for (let i = 0; i < n; i += a.batch) {
      await addBatches(Array.from({ length: Math.min(a.batch, n - i) }, payload), opts);
    }
  };

  // collected tells whether the handled jobs are gone from Redis: BullMQ
  // deletes a job (removeOnComplete) in the script that moves it out of
  // active, so they are once nothing is waiting, prioritized, active or
  // completed; the delayed jobs stay in their sorted set. Four commands,
  // read in one pipeline on BullMQ's keys rather than through
  // getJobCounts, whose script runs more, on a connection of its own.
  // calls is their number.
  const client = new IORedis(conn);
  const prefix = `bull:${a.queue}:`;
  const collected = async () => {
    const r = await client
      .pipeline()
      .llen(prefix + 'wait')
      .zcard(prefix + 'prioritized')
      .llen(prefix + 'active')
      .zcard(prefix + 'completed')
      .exec();
    let n = 0;
    for (const [err, v] of r) {
      if (err) throw err;
      n += v;
    }
    return { ok: n === 0, calls: r.length };
  };

  // waitCollected waits for collected(), checking every 2 ms, and reports
  // mark name then; after collect-timeout it gives up with a note, and no
  // mark, as waitCollected in driver.go.
  const waitCollected = async (name, n) => {
    let own = 0;
    const deadline = performance.now() + a.collectTimeoutMs;
    for (;;) {
      const c = await collected();
      own += c.calls;
      if (c.ok) return report(name, n, { own_calls: own });
      if (performance.now() > deadline) {
        console.error(`bullmq driver: handled jobs not collected within ${a['collect-timeout']}`);
        return;
      }
      await sleep(2);
    }
  };

  // Delayed jobs first, in every scenario that has them.
  await prefill(a.delayed, { ...jobOpts, delay: delayedByMs });

  const ready = async () => {
    await write('READY');
    const line = await stdin.next();
    if (line !== 'GO') throw new Error(`expected GO from the orchestrator, got ${JSON.stringify(line)}`);
  };

  // The clock and CPU counter start at GO; report prints a mark measured
  // since then.
  let t0 = 0;
  let c0 = 0;
  const go = () => {
    t0 = performance.now();
    c0 = cpuMicros();
  };
  const report = (name, n, extra = {}) => {
    const m = { n, seconds: (performance.now() - t0) / 1000, client_cpu_us: cpuMicros() - c0, ...extra };
    return write(`MARK ${name} ${JSON.stringify(m)}`);
  };

  switch (a.scenario) {
    case 'enqueue-one': {
      // An idle worker of -handlers beside, on a queue of its own, as in
      // driver.go.
      const beside = await newWorker(a.queue + '-beside', () => {});
      const datas = Array.from({ length: a.n }, payload);
      await sleep(a.settleMs);
      await ready();
      go();
      for (const data of datas) await queue.add(jobName, data, jobOpts);
      await report('done', a.n);
      closing = true;
      await beside.close();
      break;
    }

    case 'producer': {
      // -handlers concurrent loops share the one Queue, each adding its
      // share of -n jobs one at a time and awaiting each, with no worker,
      // as in driver.go; latency is per add.
      const g = Math.max(1, a.handlers);
      const lat = [];
      await ready();
      go();
      await Promise.all(
        Array.from({ length: g }, async (_, i) => {
          for (let k = i; k < a.n; k += g) {
            const data = payload();
            const start = performance.now();
            await queue.add(jobName, data, jobOpts);
            lat.push(Math.trunc((performance.now() - start) * 1000));
          }
        }),
      );
      lat.sort((x, y) => x - y);
      await report('done', a.n, {
        lat_us: { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.length ? lat[lat.length - 1] : 0 },
      });
      break;
    }

    case 'enqueue-batch': {
      const datas = Array.from({ length: a.n }, payload);
      await ready();
      go();
      await addBatches(datas);
      await report('done', a.n);
      break;
    }

    case 'e2e': {
      await prefill(a.n);
      await ready();
      let handled = 0;
      let allHandled;
      const all = new Promise((resolve) => (allHandled = resolve));
      go();
      await startWorker(() => {
        if (++handled === a.n) allHandled();
      });
      if (a.n > 0) await all;
      await report('handled', a.n);
      // The processor counts a job as it starts; BullMQ deletes the job as it
      // completes.
      await waitCollected('clean', a.n);
      await stopWorker();
      break;
    }

    case 'redis-mem': {
      let handled = 0;
      let allHandled;
      const all = new Promise((resolve) => (allHandled = resolve));
      await startWorker(() => {
        if (++handled === a.n) allHandled();
      });
      await sleep(a.settleMs);
      await ready();
      go();
      await prefill(a.n);
      if (a.n > 0) await all;
      await report('handled', a.n);
      await waitCollected('clean', a.n);
      await stopWorker();
      break;
    }

    case 'queues':
      await write('SKIP many queues on one shared client: not driven for BullMQ');
      break;

    case 'latency': {
      if (a.rate <= 0) throw new Error('-rate must be positive');
      const n = Math.trunc((a.durationMs / 1000) * a.rate);
      const lat = [];
      let allReceived;
      const all = new Promise((resolve) => (allReceived = resolve));
      await startWorker((data) => {
        lat.push(Math.trunc(nowMicros() - data.t));
        if (lat.length === n) allReceived();
      });
      await sleep(a.settleMs); // let the worker go idle
      await ready();
      go();
      // Send on a fixed schedule, the i-th job at t0 + i*interval, like the
      // Go driver's ticker; a send that falls behind goes out at once.
      const interval = 1000 / a.rate;
      for (let i = 1; i <= n; i++) {
        const wait = t0 + i * interval - performance.now();
        if (wait > 0) await sleep(wait);
        await queue.add(jobName, payload(), jobOpts);
      }
      if (n > 0) await all;
      lat.sort((x, y) => x - y);
      await report('done', n, {
        lat_us: { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.length ? lat[lat.length - 1] : 0 },
      });
      await stopWorker();
      break;
    }

    case 'idle': {
      await startWorker(() => {});
      await sleep(a.settleMs); // past the first, short end-of-queue waits
      await ready();
      go();
      await sleep(a.durationMs);
      await report('done', 0);
      await stopWorker();
      break;
    }

    default:
      throw new Error(`unknown scenario "${a.scenario}"`);
  }

  await write('END');
  closing = true;
  await queue.close();
  client.disconnect();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bullmq driver: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
