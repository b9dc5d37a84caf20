/**
 * The qdiscs read in-process over rtnetlink (resources/shaper/qdiscs.ts,
 * native/rtnl-qdisc.ts) against `parseQdiscJson` of the `tc -j qdisc show` process they
 * replace, on the real kernel, in a namespace of their own: the kernel's default qdiscs
 * (noqueue on lo and veths, none on a device never up, pfifo_fast on a TUN, mq with its children
 * on a multi-queue TUN and ifb), an HTB root `1:` with `default 11`, a class and its bfifo
 * leaf, a clsact, an ingress on another device, a TUN of awg's naming with an HTB, an ifb of
 * awg's with an HTB, fifos with a limit and a handle the kernel chose, and a tbf and an
 * fq_codel where the kernel has them — every entry equal, in the kernel's order (tc prints
 * in the dump's order).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQdiscJson, type TcQdisc } from '../../src/resources/shaper/parse.js';
import { netlinkQdiscs } from '../../src/resources/shaper/qdiscs.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['tc']);

async function tcQdiscs(ns: string): Promise<TcQdisc[]> {
  const r = await nsExec(ns, 'tc', ['-j', 'qdisc', 'show']);
  return parseQdiscJson(r.stdout);
}

async function batch(ns: string, cmd: 'ip' | 'tc', lines: readonly string[]) {
  await nsExec(ns, cmd, ['-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/** whether `tc qdisc add|replace …` takes (a qdisc kind the kernel may lack) */
async function tcTakes(ns: string, args: string): Promise<boolean> {
  const r = await nsExec(ns, 'tc', ['qdisc', ...args.split(' ')], { allowFail: true });
  return r.code === 0;
}

async function same(ns: string): Promise<TcQdisc[]> {
  const want = await tcQdiscs(ns);
  const got = await netlinkQdiscs(ns);
  expect(got).toEqual(want);
  return got;
}

describe.skipIf(skip)('qdiscs over netlink = parseQdiscJson(`tc -j qdisc show`)', () => {
  beforeAll(async () => {
    await sweepStaleNetns();
  });
  const made: string[] = [];
  afterAll(async () => {
    for (const ns of made) await destroyNetns(ns);
  });
  const inNs = async (f: (ns: string) => Promise<void>) => {
    const ns = await createNetns('qdiscrows');
    made.push(ns);
    try {
      await f(ns);
    } finally {
      made.splice(made.indexOf(ns), 1);
      await destroyNetns(ns);
    }
  };

  it('a fresh namespace: lo’s noqueue only', async () => {
    await inNs(async (ns) => {
      expect(await same(ns)).toEqual([{ kind: 'noqueue', handle: '0:', dev: 'lo', root: true }]);
    });
  });

  it('default qdiscs, HTB trees with a bfifo leaf, a clsact, an ingress, a TUN and an ifb of awg, fifos', async () => {
    await inNs(async (ns) => {
      await batch(ns, 'ip', [
        'link add v0 type veth peer name v0p',
        'link set v0 up',
        'link set v0p up',
        'link add v1 type veth peer name v1p',
        'link add v3 type veth peer name v3p',
        'tuntap add dev awg-t0 mode tun',
        'link set awg-t0 alias "awg:managed" up',
        'tuntap add dev tp0 mode tun',
        'link set tp0 up',
        'tuntap add dev tpm mode tun multi_queue',
        'link set tpm up',
        'link add awgq-x type ifb',
        'link set awgq-x alias "awg:managed" up',
        'link add awgq-m numtxqueues 4 type ifb',
        'link set awgq-m up',
        'link add v2 type veth peer name v2p',
        'link set v2 up',
        'link set v2p up',
      ]);
      await batch(ns, 'tc', [
        'qdisc add dev v0 root handle 1: htb default 11',
        'class add dev v0 parent 1: classid 1:1 htb rate 20mbit',
        'class add dev v0 parent 1:1 classid 1:11 htb rate 10mbit ceil 20mbit',
        'qdisc add dev v0 parent 1:11 handle 11: bfifo limit 30000',
        'qdisc add dev v0 clsact',
        'qdisc add dev v0p ingress',
        'qdisc replace dev awg-t0 root handle 1: htb default 0x2',
        'class add dev awg-t0 parent 1: classid 1:2 htb rate 5mbit',
        'qdisc add dev awg-t0 parent 1:2 handle 2: bfifo limit 12345',
        'qdisc add dev awgq-x root handle 1: htb',
        'qdisc add dev v2 root pfifo limit 77',
        'qdisc add dev v2p root handle abc: pfifo_head_drop limit 9',
      ]);
      const optional = [
        'add dev v1 root tbf rate 1mbit burst 10k latency 50ms',
        'add dev v1p root fq_codel',
      ];
      for (const o of optional) await tcTakes(ns, o);
      const rows = await same(ns);
      const find = (dev: string, kind: string) =>
        rows.find((q) => q.dev === dev && q.kind === kind);
      expect(find('v0', 'htb')).toMatchObject({ handle: '1:', root: true, default: 0x11 });
      expect(find('v0', 'bfifo')).toMatchObject({ handle: '11:', parent: '1:11', limit: 30000 });
      expect(find('v0', 'clsact')).toMatchObject({ handle: 'ffff:', parent: 'ffff:fff1' });
      expect(find('v0p', 'ingress')).toMatchObject({ handle: 'ffff:', parent: 'ffff:fff1' });
      expect(find('awg-t0', 'htb')).toMatchObject({ default: 2 });
      expect(find('awgq-x', 'htb')).toMatchObject({ default: 0 });
      // a device never up has the builtin noop, which the kernel does not list (nor tc)
      expect(rows.some((q) => q.dev === 'v3')).toBe(false);
      expect(find('tp0', 'pfifo_fast')).toMatchObject({ root: true });
      expect(find('tpm', 'mq')).toMatchObject({ root: true });
      expect(rows.filter((q) => q.dev === 'awgq-m' && q.parent?.startsWith(':'))).toHaveLength(4);
      expect(find('v2p', 'pfifo_head_drop')).toMatchObject({ handle: 'abc:', limit: 9 });

      // and after the HTB goes and a device is deleted
      await batch(ns, 'tc', ['qdisc del dev v0 root', 'qdisc del dev v0 clsact']);
      await batch(ns, 'ip', ['link del awgq-m']);
      const after = await same(ns);
      expect(after.some((q) => q.dev === 'v0' && q.kind === 'htb')).toBe(false);
      expect(after.some((q) => q.dev === 'awgq-m')).toBe(false);
    });
  });
});
