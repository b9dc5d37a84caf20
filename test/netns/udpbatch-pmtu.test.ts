/**
 * Datagrams larger than the path MTU never vanish (src/native/udpbatch.ts): UDP GSO needs each
 * segment to fit the path, and the kernel refuses a whole UDP_SEGMENT message with EMSGSIZE
 * otherwise. AmneziaWG's S4 prefix makes a full-size packet at the default tunnel MTU exactly
 * such a datagram (1420 + 32 + 23 = 1475 bytes of UDP, 1503 of IPv4). In a namespace whose
 * loopback has a 1500-byte MTU, the engine's own socket sends runs of 1475-byte datagrams
 * (which must be fragmented) between runs that fit, on each of its send paths (inline, the
 * sender thread, the pool sender): every datagram arrives whole and in order.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { netnsPath, nsExec, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';
import { REPO_ROOT } from '../helpers/awg.js';

const skip = requireNetnsPrereqs();
const PORT = 45124;

describe.skipIf(!!skip)('oversized datagrams on the batched send path', () => {
  const ns = useNetns('upm');

  it('are fragmented instead of lost, GSO or not, on every send path', async () => {
    await nsExec(ns.name, 'ip', ['link', 'set', 'lo', 'mtu', '1500', 'up']);
    const code = `
      import { createSocket } from 'node:dgram';
      import { once } from 'node:events';
      import { NativeUdpBind } from ${JSON.stringify(join(REPO_ROOT, 'src/dataplane/conn/native-udp.ts'))};
      const r = createSocket('udp4');
      const got = [];
      r.on('message', (m) => got.push(m));
      r.bind(${PORT}, '127.0.0.1');
      await once(r, 'listening');
      r.setRecvBufferSize(16 << 20);
      // runs that fit (1000, 1452) and runs that do not (1475, 1600), a short last one too
      const sizes = [];
      for (const [len, n] of [[1000, 10], [1475, 40], [1452, 8], [1600, 3], [1475, 64], [900, 1], [1475, 5], [1475, 1]])
        for (let k = 0; k < n; k++) sizes.push(len);
      const out = {};
      for (const [mode, opts] of [['inline', {}], ['thread', { sendThread: 'eager' }], ['pool', { sendThread: 'eager', sendPool: true }]]) {
        got.length = 0;
        const b = new NativeUdpBind('127.0.0.1', opts);
        await b.open(0);
        const bufs = sizes.map((len, i) => { const d = Buffer.alloc(len, i & 0xff); d.writeUInt32BE(i, 0); return d; });
        b.send(bufs, { address: '127.0.0.1', port: ${PORT} });
        b.send(bufs.slice(0, 50), { address: '127.0.0.1', port: ${PORT} }); // the learnt limit
        for (let t = 0; t < 40 && got.length < bufs.length + 50; t++) await new Promise((res) => setTimeout(res, 50));
        const want = [...bufs, ...bufs.slice(0, 50)];
        const intact = got.length === want.length && got.every((g, i) => g.equals(want[i]));
        out[mode] = { sent: want.length, got: got.length, intact, segmenting: b.segmenting, apart: b.segmentsApart, dropped: b.sendDropped };
        await b.close();
      }
      r.close();
      console.log(JSON.stringify(out));
    `;
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
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
    expect(res.code, res.stderr).toBe(0);
    const r = JSON.parse(res.stdout.trim().split('\n').pop()!) as Record<
      string,
      {
        sent: number;
        got: number;
        intact: boolean;
        segmenting: boolean;
        apart: number;
        dropped: number;
      }
    >;
    const gso = process.env.AWG_UDP_GSO !== '0';
    for (const mode of ['inline', 'thread', 'pool']) {
      expect(r[mode], mode).toMatchObject({ sent: 182, got: 182, intact: true, dropped: 0 });
      // GSO stays on for the runs that fit
      expect(r[mode]!.segmenting, mode).toBe(gso);
      if (gso) expect(r[mode]!.apart, mode).toBeGreaterThanOrEqual(1);
    }
    // inline, the limit is learnt from the first refusal: later runs are packed apart at once
    // (the thread and the pool pack bursts ahead of the kernel's answer)
    if (gso) expect(r.inline!.apart).toBe(1);
  });
});
