/**
 * The Linux TrafficSource behind `awg top` (docs/platform-linux.md#sock_diag): every read
 * dumps the namespace's TCP and UDP sockets (sock_diag, tcp_info's payload counts), takes the
 * sockets freed since the last read (the destroy groups: final counts of closed TCP
 * connections), dumps conntrack (UDP byte counts, marks, flows without a local socket),
 * joins them (linux-join.ts), and names owners: socket inode → pid (linux-owners.ts), cgroup
 * id → path (linux-cgroups.ts), the process from /proc.
 *
 * What it cannot read becomes a warning of the reading, never a failure: conntrack
 * accounting off (UDP flows without counts), conntrack unreadable, the destroy groups
 * refused (no CAP_NET_ADMIN: the last bytes of a connection closed between two reads are
 * missed), notifications lost, not root (other users' sockets without a pid).
 */
import { readFileSync, statSync } from 'node:fs';
import { ConntrackEvents, openConntrack, type CtEntry } from '../../native/conntrack.js';
import { dumpAddresses, NetlinkSocket } from '../../native/netlink.js';
import { inNetns } from '../../native/netns.js';
import {
  ALL_STATES,
  DestroyWatch,
  dumpInetSockets,
  InetNameCache,
  openSockDiag,
  TCP_STATE,
  type InetSocket,
} from '../../native/sockdiag.js';
import { CGROUP_ROOT } from '../../model/desired.js';
import { parseCgroup2Mount } from '../../resources/cgroup/parse.js';
import { relativeCgroup } from '../cgroups.js';
import { linuxProcFs, type ProcFs } from '../scan.js';
import { CgroupNames, linuxCgroupFs } from './linux-cgroups.js';
import { ConntrackTable, linuxCtIo } from './linux-conntrack.js';
import { FlowJoiner, socketTupleKey, type SocketOwner } from './linux-join.js';
import { linuxFdFs, SocketOwners, type FdFs } from './linux-owners.js';
import { ProcessTable } from './linux-processes.js';
import type { ProcessInfo, Reading, TrafficSource } from './reading.js';

export interface LinuxTrafficOptions {
  /** the network namespace to read (name or path; default: ours). /proc is the pid namespace's */
  netns?: string | undefined;
  /** awg's cgroup subtree below the v2 mount (claims.cgroupRoot; default `awg`) */
  cgroupRoot?: string | undefined;
  /** default /proc */
  proc?: string | undefined;
  /** default performance.now */
  clock?: (() => number) | undefined;
  /** subscribe to the destroy groups (default true) */
  destroyEvents?: boolean | undefined;
}

/**
 * TCP states dumped: those of sockets that carry a flow. TIME_WAIT, listeners and request
 * sockets are left out (a connection's end arrives through the destroy groups).
 */
const FLOW_STATES =
  ALL_STATES &
  ~(
    (1 << TCP_STATE.TIME_WAIT) |
    (1 << TCP_STATE.LISTEN) |
    (1 << TCP_STATE.SYN_RECV) |
    (1 << TCP_STATE.NEW_SYN_RECV)
  );

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class LinuxTrafficSource implements TrafficSource {
  private readonly diag: NetlinkSocket;
  private readonly route: NetlinkSocket;
  private readonly ct: ConntrackTable | undefined;
  private readonly ctSock: NetlinkSocket | undefined;
  private readonly ctEvents: ConntrackEvents | undefined;
  private readonly ctError: string | undefined;
  private readonly destroy: DestroyWatch | undefined;
  private readonly destroyError: string | undefined;
  private readonly joiner = new FlowJoiner();
  private readonly names = new InetNameCache();
  private readonly owners: SocketOwners;
  private readonly cgroups: CgroupNames | undefined;
  private readonly mountRoot: string;
  private readonly procfs: ProcFs;
  private readonly proc: string;
  private readonly clock: () => number;
  /** the processes named by flows, as read now or last read */
  private readonly table = new ProcessTable((pid) => this.readProcess(pid));
  private acct: { at: number; off: boolean } | undefined;

  constructor(private readonly o: LinuxTrafficOptions) {
    this.proc = o.proc ?? '/proc';
    this.clock = o.clock ?? (() => performance.now());
    this.procfs = linuxProcFs(this.proc);
    const mount = parseCgroup2Mount(tryRead(`${this.proc}/self/mountinfo`) ?? '');
    this.mountRoot = mount?.root ?? '/';
    this.cgroups = mount
      ? new CgroupNames(linuxCgroupFs(mount.mountPoint), `/${o.cgroupRoot ?? CGROUP_ROOT}`)
      : undefined;
    const fdfs: FdFs = linuxFdFs(this.proc, mount?.mountPoint);
    this.owners = new SocketOwners(fdfs);
    this.diag = openSockDiag(o.netns);
    this.route = NetlinkSocket.open({ netns: o.netns });
    let ctSock: NetlinkSocket | undefined;
    let ctEvents: ConntrackEvents | undefined;
    let ctError: string | undefined;
    try {
      ctSock = openConntrack(o.netns);
      // without events (no CAP_NET_ADMIN, or the sysctl off) every read dumps the table
      if (this.readSysctl('net/netfilter/nf_conntrack_events') !== '0')
        ctEvents = ConntrackEvents.open({ netns: o.netns });
    } catch (e) {
      if (!ctSock) ctError = message(e);
    }
    this.ctSock = ctSock;
    this.ctEvents = ctEvents;
    this.ctError = ctError;
    this.ct = ctSock ? new ConntrackTable(linuxCtIo(ctSock, ctEvents), this.clock) : undefined;
    let destroy: DestroyWatch | undefined;
    let destroyError: string | undefined;
    if (o.destroyEvents !== false) {
      try {
        destroy = DestroyWatch.open({ netns: o.netns });
      } catch (e) {
        destroyError = message(e);
      }
    }
    this.destroy = destroy;
    this.destroyError = destroyError;
  }

  read(): Promise<Reading> {
    return Promise.resolve(this.readNow());
  }

  /** the reading, synchronously (every call in it is a netlink dump or a /proc read) */
  readNow(): Reading {
    const warnings: string[] = [];
    const at = this.clock();
    this.cgroups?.tick();
    const destroyed: InetSocket[] = [];
    if (this.destroy) {
      try {
        const b = this.destroy.take();
        destroyed.push(...b.sockets);
        if (b.lost > 0)
          warnings.push(
            `socket close notifications were lost (${b.lost}×): some closed connections' last bytes are missing`,
          );
      } catch (e) {
        warnings.push(`socket close notifications failed: ${message(e)}`);
      }
    } else if (this.destroyError !== undefined) {
      warnings.push(
        `cannot follow closed sockets (${this.destroyError}): the last bytes of connections closed between two readings are missing`,
      );
    }
    const tcp = [
      ...dumpInetSockets(this.diag, 4, 'tcp', { states: FLOW_STATES }),
      ...dumpInetSockets(this.diag, 6, 'tcp', { states: FLOW_STATES }),
    ];
    const udp = [...dumpInetSockets(this.diag, 4, 'udp'), ...dumpInetSockets(this.diag, 6, 'udp')];
    const tcpTuples = this.joiner.tuples(tcp);
    for (const s of destroyed) if (s.proto === 'tcp') tcpTuples.add(socketTupleKey(s));
    const ct = this.readConntrack(warnings, (e) => this.joiner.countsNeeded(e, tcpTuples));
    const local = new Set(dumpAddresses(this.route).flatMap((a) => (a.address ? [a.address] : [])));
    const isLocal = (a: string): boolean => local.has(a) || a.startsWith('127.') || a === '::1';

    // owners: inode → pid, searched for the sockets not seen before
    const inodes = new Set<number>();
    const cgroupOfInode = new Map<number, number>();
    for (const s of [...tcp, ...udp]) {
      if (s.inode === 0) continue;
      inodes.add(s.inode);
      if (s.cgroupId !== undefined) cgroupOfInode.set(s.inode, s.cgroupId);
    }
    const pidOf = this.owners.resolve(inodes, (i) => {
      const id = cgroupOfInode.get(i);
      return id === undefined ? undefined : this.cgroups?.name(id);
    });
    // the owners' processes first: their cgroups name the cgroup ids of their sockets
    const processes = new Map<number, ProcessInfo>();
    for (const pid of pidOf.values()) {
      if (processes.has(pid)) continue;
      const info = this.table.read(pid);
      if (info) processes.set(pid, info);
    }
    const owner = (s: InetSocket): SocketOwner => {
      const pid = s.inode !== 0 ? pidOf.get(s.inode) : undefined;
      const cgroup = s.cgroupId !== undefined ? this.cgroups?.name(s.cgroupId) : undefined;
      return {
        ...(pid !== undefined ? { pid } : {}),
        uid: s.uid,
        ...(cgroup !== undefined ? { cgroup } : {}),
      };
    };
    const { flows, uncounted } = this.joiner.join({
      tcp,
      udp,
      destroyed,
      conntrack: ct?.entries,
      ctEnded: ct?.ended ?? [],
      isLocal,
      owner,
    });
    if (uncounted > 0)
      warnings.push(
        `conntrack accounting is off (net.netfilter.nf_conntrack_acct = 0, or it was when the flow began): ${uncounted} UDP flow(s) without byte counts`,
      );
    else if (this.acctOff())
      warnings.push(
        'conntrack accounting is off (net.netfilter.nf_conntrack_acct = 0): UDP flows have no byte counts',
      );
    if (process.geteuid?.() !== 0)
      warnings.push("not root: other users' sockets are shown without their process");

    for (const f of flows) {
      if (f.pid === undefined || processes.has(f.pid)) continue;
      const info = this.table.read(f.pid);
      if (info) processes.set(f.pid, info);
    }
    const named = new Set(flows.flatMap((f) => (f.pid !== undefined ? [f.pid] : [])));
    // a flow whose process exited (a closed connection, a UDP flow's entry) keeps its pid and
    // the process as last read
    return { at, flows, processes: this.table.finish(processes, named, at), warnings };
  }

  private readConntrack(
    warnings: string[],
    needed: (e: CtEntry) => boolean,
  ): { entries: CtEntry[]; ended: CtEntry[] } | undefined {
    if (!this.ct) {
      warnings.push(
        `conntrack is unreadable (${this.ctError ?? 'no socket'}): no UDP byte counts, no unattributed flows`,
      );
      return undefined;
    }
    try {
      return this.ct.refresh(needed);
    } catch (e) {
      warnings.push(
        `conntrack is unreadable (${message(e)}): no UDP byte counts, no unattributed flows`,
      );
      return undefined;
    }
  }

  /** a sysctl of the namespace read (`net/…`, per namespace), trimmed; undefined when absent */
  private readSysctl(name: string): string | undefined {
    try {
      return inNetns(this.o.netns, () => tryRead(`/proc/sys/${name}`))?.trim();
    } catch {
      return undefined;
    }
  }

  /** the namespace's net.netfilter.nf_conntrack_acct (a per-namespace sysctl) is 0; read every 10 s */
  private acctOff(): boolean {
    const now = this.clock();
    if (!this.acct || now - this.acct.at >= 10_000)
      this.acct = { at: now, off: this.readSysctl('net/netfilter/nf_conntrack_acct') === '0' };
    return this.acct.off;
  }

  private readProcess(pid: number): ProcessInfo | undefined {
    const name = this.procfs.comm(pid);
    if (name === undefined) return undefined;
    const exe = this.procfs.exe(pid);
    let uid: number | undefined;
    try {
      uid = statSync(`${this.proc}/${pid}`).uid;
    } catch {
      /* gone */
    }
    const raw = this.procfs.cgroup(pid);
    const rel = raw === undefined ? undefined : relativeCgroup(raw, this.mountRoot);
    const cgroup = rel === undefined ? undefined : `/${rel}`;
    if (cgroup !== undefined) this.cgroups?.learn(cgroup);
    return {
      pid,
      name,
      ...(exe !== undefined ? { exe } : {}),
      ...(uid !== undefined ? { uid } : {}),
      ...(cgroup !== undefined ? { cgroup } : {}),
    };
  }

  close(): void {
    this.destroy?.close();
    this.ctEvents?.close();
    this.diag.close();
    this.route.close();
    this.ctSock?.close();
  }
}

/**
 * The Linux traffic source: sock_diag + the destroy groups + conntrack + /proc. Opens its
 * netlink sockets now (in `netns` when given); `close()` releases them.
 */
export function linuxTrafficSource(opts: LinuxTrafficOptions = {}): TrafficSource & {
  readNow(): Reading;
} {
  return new LinuxTrafficSource(opts);
}
