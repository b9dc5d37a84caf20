/**
 * The per-app topology's test app (perapp-topology.ts): copies of the node binary under a
 * private temp dir, so a rule can match them by name, dir or path and nothing else on the
 * host; probes from argv (one-shot), or an agent reading probe lines on stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsPath } from '../helpers/netns.js';
import { ADDR } from './perapp-addr.js';

/**
 * `app app.cjs tcp:PORT udp:PORT …` runs the probes at once, prints one JSON line per probe (in
 * argv order) and exits 0;
 * `app app.cjs agent` prints `ready`, then answers each stdin line `tcp:PORT`/`udp:PORT`
 * with one JSON line (probes run at once: their answers come in any order). A probe result: {probe, ok, from?, err?}. Timeouts are generous and
 * only bound a probe that gets nothing (blocked / dropped); they are never asserted on.
 */
const APP_JS = `
const http = require('http'), dgram = require('dgram'), readline = require('readline');
const SERVER = ${JSON.stringify(ADDR.server)};
const TIMEOUT = 4000;
function tcp(port) {
  return new Promise((res) => {
    const q = http.get({ host: SERVER, port, path: '/', timeout: TIMEOUT, agent: false }, (r) => {
      let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => { try { res({ ok: true, from: JSON.parse(b).from }); } catch (e) { res({ ok: false, err: 'bad reply ' + b }); } });
    });
    q.on('timeout', () => { q.destroy(); res({ ok: false, err: 'ETIMEDOUT' }); });
    q.on('error', (e) => res({ ok: false, err: e.code || e.message }));
  });
}
function udp(port) {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    let done = false, timer, tick;
    const fin = (v) => { if (done) return; done = true; clearTimeout(timer); clearInterval(tick); s.close(); res(v); };
    s.on('message', (m) => { try { fin({ ok: true, from: JSON.parse(String(m)).from }); } catch { fin({ ok: false, err: 'bad reply' }); } });
    s.on('error', (e) => fin({ ok: false, err: e.code || e.message }));
    let sendErr;
    const send = () => s.send('ping', (e) => { if (e) sendErr = e.code || e.message; });
    s.connect(port, SERVER, () => { send(); tick = setInterval(send, 500); });
    timer = setTimeout(() => fin({ ok: false, err: sendErr || 'ETIMEDOUT' }), TIMEOUT);
  });
}
async function probe(p) {
  const [kind, port] = p.split(':');
  const r = kind === 'tcp' ? await tcp(Number(port)) : kind === 'udp' ? await udp(Number(port)) : { ok: false, err: 'bad probe' };
  return JSON.stringify({ probe: p, ...r });
}
(async () => {
  const args = process.argv.slice(2);
  if (args[0] === 'agent') {
    const rl = readline.createInterface({ input: process.stdin });
    console.log('ready');
    // each probe at once: a blocked one waits out its timeout beside the others
    rl.on('line', (line) => { if (line.trim()) void probe(line.trim()).then((r) => console.log(r)); });
    return;
  }
  // at once, printed in argv order
  for (const r of await Promise.all(args.map(probe))) console.log(r);
})();
`;

export interface ProbeResult {
  probe: string;
  ok: boolean;
  from?: string;
  err?: string;
}

export function parseProbes(out: string): ProbeResult[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ProbeResult);
}

export interface Apps {
  /** the temp dir holding `apps/`, `app.cjs` */
  dir: string;
  appsDir: string;
  script: string;
  /** unique per topology: part of every app name, so rules match nothing else on the host */
  tag: string;
  /** create (if needed) the app `name` and return its executable path */
  app(name: string): string;
}

/** A private apps directory (see Apps); the caller removes `dir`. */
export function makeApps(): Apps {
  const dir = mkdtempSync(join(tmpdir(), 'awgt-perapp-'));
  const appsDir = join(dir, 'apps');
  mkdirSync(appsDir);
  const script = join(dir, 'app.cjs');
  writeFileSync(script, APP_JS);
  const tag = randomBytes(3).toString('hex');
  const made = new Map<string, string>();
  return {
    dir,
    appsDir,
    script,
    tag,
    app(name) {
      const have = made.get(name);
      if (have) return have;
      mkdirSync(join(appsDir, name), { recursive: true });
      const exe = join(appsDir, name, `awgtapp-${tag}-${name}`);
      try {
        // a hard link: /proc/PID/exe names the link it was executed through
        linkSync(process.execPath, exe);
      } catch {
        copyFileSync(process.execPath, exe);
      }
      made.set(name, exe);
      return exe;
    },
  };
}

/** A long-lived app process in `ns` answering probes on stdin (see APP_JS). */
export interface Agent {
  pid: number;
  child: ChildProcess;
  probe(p: string): Promise<ProbeResult>;
  output(): string;
  stop(): Promise<void>;
}

const agents = new Set<Agent>();

/** stop every agent still running (a topology's teardown) */
export async function stopAgents(): Promise<void> {
  for (const a of [...agents]) await a.stop();
}

export async function startAgent(
  ns: string,
  exe: string,
  script: string,
  prefix: string[] = [],
): Promise<Agent> {
  const argv = ['nsenter', `--net=${netnsPath(ns)}`, '--', ...prefix, exe, script, 'agent'];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  /** the lines a wait took (probes answer in any order: each line goes to one wait) */
  const taken = new Set<number>();
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const waitLine = async (
    pred: (l: string) => boolean,
    what: string,
    ms = 30_000,
  ): Promise<string> => {
    const end = Date.now() + ms;
    for (;;) {
      const lines = out.split('\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (!taken.has(i) && pred(lines[i]!)) {
          taken.add(i);
          return lines[i]!;
        }
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`app ${exe} exited while waiting for ${what}:\n${out}`);
      if (Date.now() > end) throw new Error(`app ${exe}: no ${what} within ${ms} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitLine((l) => l === 'ready', 'ready');
  const a: Agent = {
    get pid() {
      return child.pid ?? -1;
    },
    child,
    async probe(p) {
      child.stdin!.write(`${p}\n`);
      return JSON.parse(
        await waitLine(
          (l) => l.startsWith('{') && l.includes(`"probe":${JSON.stringify(p)}`),
          `answer to ${p}`,
        ),
      ) as ProbeResult;
    },
    output: () => out,
    async stop() {
      agents.delete(a);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  agents.add(a);
  return a;
}

// packet captures: perapp-capture.ts
export * from './perapp-capture.js';
