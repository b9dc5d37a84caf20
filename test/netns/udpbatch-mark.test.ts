/**
 * Batched UDP sends (sendmmsg on the dgram socket's fd, src/native/udpbatch.ts), with and
 * without UDP GSO, keep the socket's SO_MARK: the kill switch admits only marked engine traffic. A namespace's nft
 * output chain drops unmarked datagrams to the test port and counts the marked ones.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  netnsPath,
  nftRuleCounters,
  nsExec,
  requireNetnsPrereqs,
  useNetns,
} from '../helpers/netns.js';
import { REPO_ROOT } from '../helpers/awg.js';

const skip = requireNetnsPrereqs(['nft']);
const PORT = 45123;
const MARK = 0x4242;

describe.skipIf(!!skip)("UdpBind sendmmsg path and the engine's own socket keep SO_MARK", () => {
  const ns = useNetns('ubm');

  it('every batched datagram leaves with the mark; unmarked ones would be dropped', async () => {
    await nsExec(ns.name, 'ip', ['link', 'set', 'lo', 'up']);
    await nsExec(ns.name, 'nft', ['-f', '-'], {
      input: `table inet ubm {
  chain out {
    type filter hook output priority 0;
    udp dport ${PORT} meta mark != ${MARK} counter drop
    udp dport ${PORT} meta mark ${MARK} counter
  }
}
`,
    });
    const code = `
      import { createSocket } from 'node:dgram';
      import { once } from 'node:events';
      import { UdpBind } from ${JSON.stringify(join(REPO_ROOT, 'src/dataplane/conn/udp.ts'))};
      import { NativeUdpBind } from ${JSON.stringify(join(REPO_ROOT, 'src/dataplane/conn/native-udp.ts'))};
      import { markDgram } from ${JSON.stringify(join(REPO_ROOT, 'src/native/sockmark.ts'))};
      const r = createSocket('udp4');
      let got = 0;
      r.on('message', () => got++);
      r.bind(${PORT}, '127.0.0.1');
      await once(r, 'listening');
      r.setRecvBufferSize(8 << 20);
      const marked = new UdpBind(undefined, markDgram);
      marked.setMark(${MARK});
      await marked.open(0);
      const plain = new UdpBind(undefined, markDgram);
      await plain.open(0);
      const gso = new UdpBind(undefined, markDgram, { gso: true });
      gso.setMark(${MARK});
      await gso.open(0);
      const bufs = Array.from({ length: 150 }, (_, i) => Buffer.alloc(100 + i * 7, i));
      marked.send(bufs, { address: '127.0.0.1', port: ${PORT} });
      plain.send(bufs.slice(0, 10), { address: '127.0.0.1', port: ${PORT} });
      // the engine's own socket: mark set before open, after open, and none
      const nat1 = new NativeUdpBind();
      nat1.setMark(${MARK});
      await nat1.open(0);
      const nat2 = new NativeUdpBind();
      await nat2.open(0);
      nat2.setMark(${MARK});
      const nat3 = new NativeUdpBind();
      await nat3.open(0);
      nat1.send(bufs.slice(0, 40), { address: '127.0.0.1', port: ${PORT}, src: '127.0.0.1' });
      nat2.send(bufs.slice(40, 80), { address: '127.0.0.1', port: ${PORT} });
      nat3.send(bufs.slice(0, 5), { address: '127.0.0.1', port: ${PORT} });
      await new Promise((res) => setTimeout(res, 300));
      const gotBatched = got;
      gso.send(Array.from({ length: 100 }, (_, i) => Buffer.alloc(1000, i)), { address: '127.0.0.1', port: ${PORT} });
      await new Promise((res) => setTimeout(res, 300));
      console.log(JSON.stringify({ batching: marked.batching && plain.batching, segmenting: gso.segmenting, gotBatched, gotGso: got - gotBatched }));
      await marked.close(); await plain.close(); await gso.close(); r.close();
      await nat1.close(); await nat2.close(); await nat3.close();
    `;
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(
        'nsenter',
        [
          `--net=${netnsPath(ns.name)}`,
          '--',
          process.execPath,
          '--import',
          `file://${join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`,
          '--input-type=module',
          '-e',
          code,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('close', (c) => resolve({ code: c ?? 1, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
      batching: boolean;
      segmenting: boolean;
      gotBatched: number;
      gotGso: number;
    };
    // AWG_UDP_BATCH=0 (the diagnosis switch): one sendmsg per datagram, and so no GSO either;
    // the marks must hold the same
    const batch = process.env.AWG_UDP_BATCH !== '0';
    expect(r).toEqual({ batching: batch, segmenting: batch, gotBatched: 150 + 80, gotGso: 100 });
    const counters = await nftRuleCounters(ns.name, 'inet', 'ubm');
    // dropped the unmarked ones; admitted the marked ones (a UDP GSO run is one skb here)
    expect(counters[0]).toBe(10 + 5);
    expect(counters[1]).toBeGreaterThanOrEqual(151 + 80);
    // a GSO run crosses as one skb; with the switch, its 100 datagrams are 100
    if (batch) expect(counters[1]).toBeLessThan(330);
    else expect(counters[1]).toBeGreaterThanOrEqual(330);
  });
});
