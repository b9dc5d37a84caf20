/**
 * Fuzz targets of the UAPI text protocol (src/dataplane/device/uapi.ts, ipc/server.ts) and
 * the daemon's reader of `get=1` answers (src/resources/engine/uapi-client.ts parseGet).
 *
 * uapi/set-text   arbitrary `set=1` bodies → parseUapiSet returns a well-typed DeviceConfig
 *                 (only known keys, 32-byte keys, integers in range) or throws UapiError.
 * uapi/device     the same bodies through Device.ipcSet → a refused set changes nothing
 *                 (get=1 before = after); an accepted one is read back by parseGet with
 *                 the peers and allowed IPs that were set.
 * uapi/socket     arbitrary byte streams, cut at arbitrary points, on the UAPI Unix socket →
 *                 the server answers only whole `errno=N` / get replies and survives.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryNetwork } from '../../src/dataplane/conn/memory.fake.js';
import { Device } from '../../src/dataplane/device/device.js';
import type { DeviceConfig } from '../../src/dataplane/device/config.js';
import { UapiError, parseUapiSet } from '../../src/dataplane/device/uapi.js';
import { listenUapi, type UapiServer } from '../../src/dataplane/ipc/server.js';
import { MemoryTun } from '../../src/dataplane/tun/memory.fake.js';
import { seededRandom } from '../../src/dataplane/awg/random.fake.js';
import { parseGet } from '../../src/resources/engine/uapi-client.js';
import { bytes, cidr, endpoint, nastyString } from './arbitraries.js';
import { fc, fuzzAsync, fuzzSync, testTimeout } from './runner.js';

const hex32 = bytes(32, 32).map((b) => Buffer.from(b).toString('hex'));
const DEVICE_KEYS = [
  'private_key',
  'listen_port',
  'fwmark',
  'replace_peers',
  'jc',
  'jmin',
  'jmax',
  's1',
  's2',
  's3',
  's4',
  'h1',
  'h2',
  'h3',
  'h4',
  'i1',
  'i2',
  'i3',
  'i4',
  'i5',
  'header_protection_key',
  'random_trailers',
  'disable_cookies',
  'content_padding_addition',
  'rekey_after_time',
  'rekey_timeout',
  'reject_after_time',
  'keepalive_timeout',
  'max_handshake_attempts',
];
const PEER_KEYS = [
  'public_key',
  'remove',
  'update_only',
  'preshared_key',
  'endpoint',
  'persistent_keepalive_interval',
  'replace_allowed_ips',
  'allowed_ip',
  'protocol_version',
];
const ODD_KEYS = [
  '__proto__',
  'constructor',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'get',
  'set',
  'errno',
  'last_handshake_time_sec',
  'tx_bytes',
  'PUBLIC_KEY',
  ' public_key',
  'public_key ',
  '',
];

const value = fc.oneof(
  hex32,
  fc.constant('0'.repeat(64)),
  fc.nat({ max: 70000 }).map(String),
  fc.tuple(fc.nat({ max: 5000 }), fc.nat({ max: 5000 })).map(([a, b]) => `${a}-${b}`),
  fc.constantFrom(
    'true',
    'false',
    '1',
    '0',
    't',
    'TRUE',
    'yes',
    '',
    '-',
    '-1',
    '4294967295',
    '4294967296',
    '65535',
    '65536',
    '<r 5>',
    '<b 0x00><t>',
    '<d>',
  ),
  cidr,
  cidr.map((c) => `-${c}`),
  endpoint,
  nastyString.filter((s) => !s.includes('\n')),
);
const line = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.constantFrom(...DEVICE_KEYS, ...PEER_KEYS), value)
      .map(([k, v]) => `${k}=${v}`),
  },
  { weight: 2, arbitrary: hex32.map((k) => `public_key=${k}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...ODD_KEYS), value).map(([k, v]) => `${k}=${v}`),
  },
  { weight: 1, arbitrary: nastyString.filter((s) => !s.includes('\n')) },
);
const setBody = fc
  .tuple(fc.boolean(), fc.array(line, { maxLength: 16 }))
  .map(([head, ls]) => (head ? ['set=1', ...ls] : ls).join('\n') + '\n\n');

const KNOWN_CFG = new Set(['privateKey', 'listenPort', 'fwmark', 'replacePeers', 'awg', 'peers']);
const KNOWN_AWG = new Set([
  'jc',
  'jmin',
  'jmax',
  's1',
  's2',
  's3',
  's4',
  'h1',
  'h2',
  'h3',
  'h4',
  'i',
  'headerProtectionKey',
  'contentPaddingAddition',
  'rekeyAfterTime',
  'rekeyTimeout',
  'rejectAfterTime',
  'keepaliveTimeout',
  'maxHandshakeAttempts',
  'randomTrailers',
  'disableCookies',
]);
const KNOWN_PEER = new Set([
  'publicKey',
  'remove',
  'updateOnly',
  'presharedKey',
  'endpoint',
  'persistentKeepalive',
  'replaceAllowedIps',
  'allowedIps',
]);

const isUint = (n: unknown, max: number) =>
  typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;
const isRange = (r: unknown, max: number) => {
  const x = r as { lo: unknown; hi: unknown };
  return (
    typeof r === 'object' &&
    r !== null &&
    isUint(x.lo, max) &&
    isUint(x.hi, max) &&
    (x.lo as number) <= (x.hi as number)
  );
};
const isKey = (k: unknown) => k === null || (k instanceof Uint8Array && k.length === 32);

/** The shape parseUapiSet promises: only known fields, each in its domain. */
function expectWellTyped(cfg: DeviceConfig): void {
  for (const k of Object.keys(cfg)) expect(KNOWN_CFG.has(k), `device field ${k}`).toBe(true);
  if ('privateKey' in cfg) expect(isKey(cfg.privateKey)).toBe(true);
  if (cfg.listenPort !== undefined) expect(isUint(cfg.listenPort, 65535)).toBe(true);
  if (cfg.fwmark !== undefined) expect(isUint(cfg.fwmark, 0xffffffff)).toBe(true);
  for (const [k, v] of Object.entries(cfg.awg ?? {})) {
    expect(KNOWN_AWG.has(k), `awg field ${k}`).toBe(true);
    if (['jc', 'jmin', 'jmax'].includes(k)) expect(isUint(v, 0xffffffff), k).toBe(true);
    else if (['s1', 's2', 's3', 's4'].includes(k)) expect(isUint(v, 0xffff), k).toBe(true);
    else if (k === 'i')
      expect(
        (v as unknown[]).every(
          (x) => x === undefined || x === null || (typeof x === 'string' && !x.includes('\n')),
        ),
      ).toBe(true);
    else if (k === 'headerProtectionKey') expect(isKey(v)).toBe(true);
    else if (k === 'randomTrailers' || k === 'disableCookies') expect(typeof v).toBe('boolean');
    else expect(isRange(v, 0xffffffff), k).toBe(true);
  }
  for (const p of cfg.peers ?? []) {
    for (const k of Object.keys(p)) expect(KNOWN_PEER.has(k), `peer field ${k}`).toBe(true);
    expect(p.publicKey.length).toBe(32);
    if ('presharedKey' in p) expect(isKey(p.presharedKey)).toBe(true);
    if (p.persistentKeepalive !== undefined)
      expect(isRange(p.persistentKeepalive, 0xffff)).toBe(true);
    for (const a of p.allowedIps ?? []) expect(typeof a).toBe('string');
  }
}

function parse(text: string): DeviceConfig | undefined {
  try {
    return parseUapiSet(text);
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(UapiError);
    return undefined;
  }
}

function device(): Device {
  const net = new MemoryNetwork();
  return new Device({
    tun: new MemoryTun('fz'),
    bind: net.bind('10.0.0.1'),
    random: seededRandom(1),
    resolver: { resolve: async () => [] },
  });
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('fuzz: uapi', () => {
  it(
    'uapi/set-text: a set body parses into a well-typed config or a UapiError',
    { timeout: testTimeout(4) },
    () => {
      fuzzSync('uapi/set-text', 4, [setBody], (text) => {
        const cfg = parse(text);
        if (cfg) expectWellTyped(cfg);
      });
    },
  );

  it(
    'uapi/device: a refused set changes nothing; an accepted one reads back',
    { timeout: testTimeout(1) },
    async () => {
      // a device with a peer already, so removals and updates have something to act on
      const base = `set=1\nprivate_key=${'11'.repeat(32)}\npublic_key=${'22'.repeat(32)}\nallowed_ip=10.0.0.0/24\n\n`;
      await fuzzAsync('uapi/device', 1, [setBody], async (text) => {
        const d = device();
        await d.ipcSet(base);
        const before = d.ipcGet();
        let ok = true;
        try {
          await d.ipcSet(text);
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(UapiError);
          ok = false;
        }
        const after = d.ipcGet();
        if (!ok) {
          expect(after, 'a refused set changed the device').toBe(before);
          return;
        }
        expect(after.endsWith('errno=0\n\n')).toBe(true);
        const got = parseGet(after);
        const snap = d.snapshot();
        expect(got.peers.map((p) => p.public_key)).toEqual(
          snap.peers.map((p) => hexOf(p.publicKey)),
        );
        got.peers.forEach((p, i) => expect(p.allowed_ip).toEqual(snap.peers[i]!.allowedIps));
        // what this set said about a peer that it did not remove is now true of it
        const cfg = parseUapiSet(text);
        for (const pc of cfg.peers ?? []) {
          const p = snap.peers.find((q) => hexOf(q.publicKey) === hexOf(pc.publicKey));
          if (pc.remove) {
            expect(p, 'removed peer still there').toBeUndefined();
            continue;
          }
          if (!p) {
            expect(pc.updateOnly, 'a peer was set but is not there').toBe(true);
            continue;
          }
          if (pc.presharedKey !== undefined)
            expect(p.presharedKey ? hexOf(p.presharedKey) : null).toBe(
              pc.presharedKey && pc.presharedKey.some((b) => b) ? hexOf(pc.presharedKey) : null,
            );
        }
        await d.close();
      });
    },
  );

  describe('uapi/socket', () => {
    let dir: string;
    let server: UapiServer;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'awg-fuzz-uapi-'));
      const target = {
        ipcGet: () => 'private_key=00\nerrno=0\n\n',
        ipcSet: async (t: string) => void parseUapiSet(t),
      };
      server = await listenUapi(target, join(dir, 'fz.sock'));
    });
    afterAll(async () => {
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const op = fc.oneof(
      fc.constantFrom(
        'get=1\n\n',
        'get=1\nx',
        'set=1\n\n',
        'set=1\n',
        '\n',
        '\n\n',
        'get=1',
        'set=2\n\n',
        'get=1\r\n\r\n',
      ),
      setBody.map((b) => (b.startsWith('set=1') ? b : `set=1\n${b}`)),
      nastyString,
    );
    it(
      'answers whole replies to any stream and survives',
      { timeout: testTimeout(0.25) },
      async () => {
        await fuzzAsync(
          'uapi/socket',
          0.25,
          [
            fc.array(op, { minLength: 1, maxLength: 6 }),
            fc.array(fc.nat({ max: 40 }), { maxLength: 6 }),
          ],
          async (ops, cuts) => {
            const stream = Buffer.from(ops.join(''));
            const reply = await new Promise<string>((resolve, reject) => {
              const c = createConnection(server.path);
              let got = '';
              c.setEncoding('utf8');
              c.on('data', (d: string) => (got += d));
              // the server may hang up after an error reply while the rest of the stream is
              // still being written: EPIPE/ECONNRESET end the exchange, the reply is judged
              c.on('error', (e: NodeJS.ErrnoException) =>
                e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e),
              );
              c.on('close', () => resolve(got));
              c.on('connect', () => {
                void (async () => {
                  let at = 0;
                  for (const n of cuts) {
                    if (at >= stream.length) break;
                    c.write(stream.subarray(at, at + n + 1));
                    at += n + 1;
                    await new Promise((r) => setImmediate(r));
                  }
                  c.end(stream.subarray(at));
                })();
              });
            });
            // every reply is a get answer or an errno line, each ended by a blank line
            expect(
              reply.replace(/(private_key=00\n)?errno=-?\d+\n\n/g, ''),
              JSON.stringify(reply),
            ).toBe('');
          },
        );
        // and the server still answers
        const ok = await new Promise<string>((resolve) => {
          const c = createConnection(server.path);
          let got = '';
          c.on('data', (d) => {
            got += d.toString();
            if (got.endsWith('\n\n')) c.end();
          });
          c.on('close', () => resolve(got));
          c.write('get=1\n\n');
        });
        expect(ok).toBe('private_key=00\nerrno=0\n\n');
      },
    );
  });
});
