/**
 * The DNS learning stub: every application's DNS query (UDP and TCP port 53) is redirected
 * here by nft (render-dns-stub.ts), forwarded unchanged to the resolver the application
 * asked (the query's original destination), and its answer is read for the addresses of
 * listed names: for every rule whose domains fit the question name or a name on the answer's
 * CNAME chain, the A/AAAA addresses go into the rule's learned sets (`l4_<rule>`,
 * `l6_<rule>`) with the record's TTL as the element's timeout — and only after the kernel
 * acknowledged them does the answer go back to the application. So the application's first
 * packet to a learned address already meets the element: no first-packet race.
 *
 * Queries of rules with per-app DNS arrive at a second port (`tunnelPort`): they go to the
 * resolver of the tunnel their conntrack mark names instead (what the per-app DNAT did).
 *
 * Marks: an upstream query carries SO_MARK = the asking application's routing decision (the
 * conntrack mark route_out gave its query) — a tunnelled application's query still goes
 * through its tunnel and the kill switch judges it as before — or the bypass mark when the
 * application goes direct (mark 0). route_out keeps a premarked packet's mark, and nat_out
 * never redirects it again (render-dns-stub.ts): that is the loop guard.
 *
 * Failures: a query whose original destination cannot be found (the conntrack entry is
 * gone) or that names the stub itself is answered SERVFAIL; an upstream that stays silent
 * gets no answer from us either (the application retries); an answer whose elements could
 * not be installed is answered SERVFAIL instead (fail closed: delivered, its first connection
 * would take the next rule), counted in `installFailures`.
 *
 * Entries live in a book (util/dns-learner.ts): expiry removes elements unless their address
 * still carries connections (`inUse`), which re-adds them before the kernel's timeout runs
 * out; `resync()` re-adds the whole book after a table replace emptied the sets.
 */
import type { LearnedEntry } from '../../util/dns-learner.js';
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { NftSetWriter, SetElement } from '../../native/nftset.js';
import { markDgram } from '../../native/sockmark.js';
import { connectTcp } from '../../native/tcpsock.js';
import {
  fitUdp,
  isAnswerTo,
  parseQuery,
  servfail,
  type DnsQuery,
} from '../../proxy/dns-message.js';
import { readAnswerChain } from '../../util/dns-answers.js';
import { Learner, type Install, type LearnRule } from '../../util/dns-learner.js';

import type { DnsStubConfig, QueryOrigin, DnsStubDeps, DnsStubStats } from './types.js';
export type {
  DomainMatch,
  DnsStubRule,
  TunnelResolvers,
  DnsStubConfig,
  QueryOrigin,
  UdpPeer,
  DnsStubDeps,
  DnsStubStats,
} from './types.js';
import { frame, FrameReader } from './tcp-frame.js';

/** expiry looks this far ahead for held entries: re-added before the kernel drops them */
const HOLD_LEAD_MS = 2500;

const canon = (a: string) => a.replace(/^::ffff:(?=\d+\.)/, '');

/**
 * The SO_MARK of an upstream query for the asking application's conntrack mark: its tunnel
 * mark (our bits of it), or the bypass mark when it has none (it goes direct).
 */
export function upstreamMark(
  ctMark: number,
  m: Pick<DnsStubConfig, 'fwmarkMask' | 'bypassMark'>,
): number {
  const v = (ctMark & m.fwmarkMask) >>> 0;
  return v !== 0 && v !== m.bypassMark ? v : m.bypassMark;
}

export class DnsStub {
  private cfg: DnsStubConfig | undefined;
  private learner: Learner | undefined;
  private learnRules: LearnRule[] = [];
  private writer: Pick<NftSetWriter, 'add' | 'delete' | 'close'> | undefined;
  private udp: DgramSocket[] = [];
  private tcp: Server[] = [];
  private readonly tcpConns = new Set<Socket>();
  private timer: NodeJS.Timeout | undefined;
  private open: ReadonlySet<string> | undefined;
  private readonly counts = {
    queries: 0,
    answers: 0,
    servfails: 0,
    upstreamTimeouts: 0,
    learnedAnswers: 0,
    installs: 0,
    installFailures: 0,
    installMs: 0,
    installBatches: 0,
  };

  constructor(private readonly deps: DnsStubDeps) {}

  get running(): boolean {
    return this.cfg !== undefined;
  }

  get port(): number | undefined {
    return this.cfg?.port;
  }

  /** Listens on 127.0.0.1 and ::1 (UDP and TCP) at `cfg.port`. */
  async start(cfg: DnsStubConfig): Promise<void> {
    if (this.cfg) throw new Error('the DNS stub is already running');
    this.cfg = cfg;
    this.learner = new Learner({
      now: () => this.deps.now(),
      inUse: (addr) => this.inUse(addr),
      minTtl: cfg.minTtl,
      maxTtl: cfg.maxTtl,
    });
    this.setRules(cfg);
    this.writer = this.deps.openWriter(cfg.table);
    try {
      for (const port of cfg.tunnelPort !== undefined ? [cfg.port, cfg.tunnelPort] : [cfg.port])
        for (const host of ['127.0.0.1', '::1']) {
          this.udp.push(await this.listenUdp(host, port));
          this.tcp.push(await this.listenTcp(host, port));
        }
    } catch (e) {
      this.stop();
      throw e;
    }
    this.timer = setInterval(() => void this.tick(), this.deps.tickMs ?? 1000);
    this.timer.unref();
  }

  /**
   * New rules (or TTL clamp); a new port or table restarts the listeners. Entries of rules
   * that are gone leave the book when they expire (their sets went with the table).
   */
  async update(cfg: DnsStubConfig): Promise<void> {
    const cur = this.cfg;
    if (!cur) return this.start(cfg);
    if (cur.port !== cfg.port || cur.tunnelPort !== cfg.tunnelPort || cur.table !== cfg.table) {
      this.stop();
      return this.start(cfg);
    }
    this.cfg = cfg;
    this.setRules(cfg);
  }

  /** every entry of the book (a copy), with the clock its expiry is on */
  entries(): { entries: LearnedEntry[]; now: number } {
    return { entries: this.learner?.entries() ?? [], now: this.deps.now() };
  }

  /** Re-adds every entry of the book (after a table replace emptied the learned sets). */
  async resync(): Promise<void> {
    if (!this.learner) return;
    const now = this.deps.now();
    const installs: Install[] = this.learner
      .entries()
      .filter((e) => e.expiresAt > now)
      .map((e) => ({ ...e, ttlMs: e.expiresAt - now }));
    await this.install(installs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.udp) s.close();
    for (const s of this.tcp) s.close();
    for (const c of this.tcpConns) c.destroy();
    this.udp = [];
    this.tcp = [];
    this.tcpConns.clear();
    this.writer?.close();
    this.writer = undefined;
    this.cfg = undefined;
    this.learner = undefined;
  }

  stats(): DnsStubStats {
    const entries = this.learner?.entries() ?? [];
    const c = this.counts;
    return {
      queries: c.queries,
      answers: c.answers,
      servfails: c.servfails,
      upstreamTimeouts: c.upstreamTimeouts,
      learnedAnswers: c.learnedAnswers,
      installs: c.installs,
      installFailures: c.installFailures,
      elements: entries.length,
      names: new Set(entries.map((e) => e.name)).size,
      meanInstallMs: c.installBatches ? c.installMs / c.installBatches : 0,
    };
  }

  /** The book's entries for `addr` (for explain/status). */
  lookup(addr: string) {
    return this.learner?.lookup(addr) ?? [];
  }

  // ---- internals ------------------------------------------------------------------------

  private setRules(cfg: DnsStubConfig): void {
    this.learnRules = cfg.rules.map((r) => ({
      rule: r.rule,
      listed: (n: string) => r.domains.matchDomain(n),
    }));
  }

  private setOf(rule: string, family: 4 | 6): string | undefined {
    const r = this.cfg?.rules.find((x) => x.rule === rule);
    return family === 4 ? r?.sets.v4 : r?.sets.v6;
  }

  private inUse(addr: string): boolean {
    this.open ??= this.deps.openDestinations();
    return this.open.has(addr);
  }

  private upstreamMark(ctMark: number): number {
    return upstreamMark(ctMark, this.cfg!);
  }

  /** whether `o` is one of our own listeners (a query sent to the stub directly) */
  private isSelf(o: QueryOrigin): boolean {
    const c = this.cfg;
    return (
      (o.port === c?.port || o.port === c?.tunnelPort) &&
      (o.addr === '127.0.0.1' || o.addr === '::1')
    );
  }

  /**
   * Where a query that reached listener port `port` goes: its original resolver, or (the
   * per-app DNS port) the resolver of the tunnel its mark names, of the query's family first.
   */
  private upstreamOf(
    o: QueryOrigin | undefined,
    port: number,
    family: 4 | 6,
  ): QueryOrigin | undefined {
    if (!o || this.isSelf(o)) return undefined;
    if (port !== this.cfg?.tunnelPort) return o;
    const mark = (o.mark & this.cfg.fwmarkMask) >>> 0;
    const r = this.cfg.tunnelResolvers?.find((t) => t.mark === mark);
    const addr = family === 6 ? (r?.v6 ?? r?.v4) : (r?.v4 ?? r?.v6);
    return addr === undefined ? undefined : { addr, port: r?.port ?? 53, mark: o.mark };
  }

  /** Adds `installs` to their sets (one transaction per set), resolving after the acks. */
  private async install(installs: readonly Install[]): Promise<boolean> {
    if (!installs.length || !this.writer) return true;
    const bySet = new Map<string, SetElement[]>();
    for (const i of installs) {
      const set = this.setOf(i.rule, i.family);
      if (set === undefined) continue;
      const list = bySet.get(set) ?? [];
      list.push({ addr: i.addr, timeoutMs: Math.max(1000, Math.round(i.ttlMs)) });
      bySet.set(set, list);
    }
    const t0 = performance.now();
    let ok = true;
    for (const [set, elements] of bySet) {
      try {
        await this.writer.add(set, elements);
        this.counts.installs += elements.length;
      } catch {
        ok = false;
        this.counts.installFailures += elements.length;
      }
    }
    this.counts.installMs += performance.now() - t0;
    this.counts.installBatches++;
    return ok;
  }

  /**
   * Learns from `answer`; resolves once the kernel holds the elements: true, or false when a
   * listed address could not be installed (the answer must not reach the application).
   */
  private async learn(answer: Buffer): Promise<boolean> {
    if (!this.learner || !this.learnRules.length) return true;
    const r = this.learner.learnChain(
      readAnswerChain(answer, { minTtl: this.cfg?.minTtl, maxTtl: this.cfg?.maxTtl }),
      this.learnRules,
    );
    if (!r.installs.length) return true;
    if (!(await this.install(r.installs))) return false;
    this.counts.learnedAnswers++;
    return true;
  }

  /**
   * One expiry pass (the timer runs it every `tickMs`): entries about to expire whose address
   * carries connections are refreshed; expired free ones leave the book and their sets.
   */
  async tick(): Promise<void> {
    const learner = this.learner;
    if (!learner || !this.writer) return;
    this.open = undefined;
    const now = this.deps.now();
    try {
      // held entries are refreshed before the kernel's timeout drops their elements
      const refresh: Install[] = [];
      for (const e of learner.entries())
        if (e.expiresAt - now <= HOLD_LEAD_MS && this.inUse(e.addr))
          refresh.push(...learner.refresh(e.addr, e.rule));
      await this.install(refresh);
      const { remove } = learner.expire(now);
      const bySet = new Map<string, string[]>();
      for (const e of remove) {
        const set = this.setOf(e.rule, e.family);
        if (set !== undefined) bySet.set(set, [...(bySet.get(set) ?? []), e.addr]);
      }
      for (const [set, addrs] of bySet)
        await this.writer.delete(set, addrs, { ignoreMissing: true }).catch(() => undefined);
    } catch {
      // the next pass tries again
    } finally {
      this.open = undefined;
    }
  }

  private async listenUdp(host: string, port: number): Promise<DgramSocket> {
    const s = createSocket(isIP(host) === 6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    s.on('error', () => undefined);
    s.on('message', (msg, rinfo) => void this.onUdp(s, host, port, msg, rinfo));
    return s;
  }

  private async onUdp(
    s: DgramSocket,
    host: string,
    port: number,
    msg: Buffer,
    rinfo: RemoteInfo,
  ): Promise<void> {
    const q = parseQuery(msg);
    if (!q) return;
    this.counts.queries++;
    const rd = (msg.readUInt16BE(2) & 0x0100) !== 0;
    const family = isIP(host) === 6 ? 6 : 4;
    const reply = (b: Buffer) => s.send(fitUdp(b, q.udpLimit), rinfo.port, rinfo.address);
    let origin: QueryOrigin | undefined;
    try {
      origin = this.upstreamOf(
        this.deps.udpOrigin({
          family,
          addr: canon(rinfo.address),
          port: rinfo.port,
          localAddr: host,
          localPort: port,
        }),
        port,
        family,
      );
    } catch {
      origin = undefined;
    }
    if (!origin) {
      this.counts.servfails++;
      reply(servfail(q, rd));
      return;
    }
    const answer = await this.askUdp(msg, q, origin).catch(() => undefined);
    if (!answer) {
      this.counts.upstreamTimeouts++;
      return;
    }
    if (!(await this.learn(answer))) {
      this.counts.servfails++;
      reply(servfail(q, rd));
      return;
    }
    if (!this.cfg) return;
    this.counts.answers++;
    reply(answer);
  }

  /** One query to the original resolver over a fresh UDP socket (a random source port). */
  private async askUdp(msg: Buffer, q: DnsQuery, o: QueryOrigin): Promise<Buffer | undefined> {
    const sock = createSocket({ type: isIP(o.addr) === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(0, () => {
          sock.off('error', reject);
          resolve();
        });
      });
      if (this.deps.marks) markDgram(sock, this.upstreamMark(o.mark));
      return await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), this.deps.upstreamTimeoutMs ?? 5000);
        sock.on('error', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
        sock.on('message', (r, rinfo) => {
          if (rinfo.port !== o.port || canon(rinfo.address) !== o.addr) return;
          if (!isAnswerTo(r, q)) return;
          clearTimeout(timer);
          resolve(r);
        });
        sock.send(msg, o.port, o.addr);
      });
    } finally {
      sock.close();
    }
  }

  private async listenTcp(host: string, port: number): Promise<Server> {
    const srv = createServer({ pauseOnConnect: false }, (c) => this.onTcp(c, port));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, ...(isIP(host) === 6 ? { ipv6Only: true } : {}) }, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    srv.on('error', () => undefined);
    return srv;
  }

  /** A client's TCP connection: its messages one at a time to one upstream connection. */
  private onTcp(c: Socket, port: number): void {
    this.tcpConns.add(c);
    c.on('error', () => undefined);
    c.on('close', () => this.tcpConns.delete(c));
    let origin: QueryOrigin | undefined;
    try {
      origin = this.upstreamOf(this.deps.tcpOrigin(c), port, c.localFamily === 'IPv6' ? 6 : 4);
    } catch {
      origin = undefined;
    }
    const frames = new FrameReader();
    let up: Promise<Socket | undefined> | undefined;
    let chain = Promise.resolve();
    const upFrames = new FrameReader();
    let waiting: ((b: Buffer | undefined) => void) | undefined;
    const connectUp = (o: QueryOrigin) =>
      connectTcp({
        host: o.addr,
        port: o.port,
        timeoutMs: this.deps.upstreamTimeoutMs ?? 5000,
        ...(this.deps.marks ? { mark: this.upstreamMark(o.mark) } : {}),
      }).then(
        (u) => {
          u.on('error', () => undefined);
          u.on('data', (d: Buffer) => {
            for (const m of upFrames.push(d)) waiting?.(m);
          });
          u.on('close', () => waiting?.(undefined));
          c.on('close', () => u.destroy());
          return u;
        },
        () => undefined,
      );
    const handle = async (msg: Buffer) => {
      const q = parseQuery(msg);
      if (!q) return void c.destroy();
      this.counts.queries++;
      const rd = (msg.readUInt16BE(2) & 0x0100) !== 0;
      if (!origin) {
        this.counts.servfails++;
        c.write(frame(servfail(q, rd)));
        return;
      }
      up ??= connectUp(origin);
      const u = await up;
      if (!u || u.destroyed) {
        this.counts.upstreamTimeouts++;
        return void c.destroy();
      }
      const answer = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), this.deps.upstreamTimeoutMs ?? 5000);
        waiting = (b) => {
          if (b && !isAnswerTo(b, q)) return;
          clearTimeout(timer);
          waiting = undefined;
          resolve(b);
        };
        u.write(frame(msg));
      });
      if (!answer) {
        this.counts.upstreamTimeouts++;
        return void c.destroy();
      }
      if (!(await this.learn(answer))) {
        this.counts.servfails++;
        c.write(frame(servfail(q, rd)));
        return;
      }
      this.counts.answers++;
      c.write(frame(answer));
    };
    c.on('data', (d: Buffer) => {
      let msgs: Buffer[];
      try {
        msgs = frames.push(d);
      } catch {
        return void c.destroy();
      }
      for (const m of msgs) chain = chain.then(() => handle(m)).catch(() => void c.destroy());
    });
  }
}
