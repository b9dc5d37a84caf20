/**
 * Fuzz targets of the AmneziaVPN key reader (src/config/import/vpn-key.ts, vpn-doc.ts, vpn.ts).
 *
 * import/vpn-key-text   arbitrary text, edits of valid keys and keys cut anywhere →
 *                       decodeVpnKey returns a document or throws VpnKeyError, nothing else;
 *                       importVpnKey never throws nor reports an internal error; no message
 *                       quotes the key's private key.
 * import/vpn-key-bytes  valid packed bytes with bytes flipped, cut or inserted, length headers
 *                       anywhere in uint32, and deflate bombs → the same, and what inflates
 *                       stays within VPN_KEY_MAX_BYTES (bounded memory).
 * import/vpn-key-doc    JSON documents near the apps' shape (containers of any name, fields of
 *                       any type, last_config text or not, gateway and login fields) → an
 *                       import that succeeds validates and names no secret it dropped.
 */
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { importVpnKey } from '../../src/config/import/vpn.js';
import { decodeVpnKey, VpnKeyError, VPN_KEY_MAX_BYTES } from '../../src/config/import/vpn-key.js';
import { Config } from '../../src/config/schema.js';
import { amneziaKey, awgParams, qtToJson, type J } from '../helpers/amnezia-key.js';
import { applyEdits, bytes, edits, nastyString, wgKey } from './arbitraries.js';
import { fc, fuzzSync, testTimeout, expectTyped } from './runner.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PASSWORD = 'fuzz-ssh-password-7d1f';
const HPK = 'oK0rKs5CKXJsbVnRfZj8uI6ZdI0JLk3Ls/L2+E4bQ7o=';

const GOOD = (['wg', '1.0', '2.0', '3.1'] as const).map((gen) =>
  amneziaKey([
    {
      gen,
      privateKey: PRIV,
      publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
      serverPublicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
      clientIp: '10.8.1.3',
      host: 'vpn.example.com',
      port: 47600,
      ...(gen === 'wg' ? {} : { awg: awgParams(gen, HPK) }),
      extra: { userName: 'root', password: PASSWORD, port: 22 },
    },
  ]),
);

/** decode, import, and hold them to the contract */
function check(text: string): void {
  try {
    const d = decodeVpnKey(text);
    if (d.kind === 'json')
      expect(JSON.stringify(d.doc).length).toBeLessThanOrEqual(2 * VPN_KEY_MAX_BYTES);
    else expect(d.text.length).toBeLessThanOrEqual(2 * VPN_KEY_MAX_BYTES);
  } catch (e) {
    expectTyped(e, VpnKeyError);
  }
  const r = importVpnKey(text, { file: 'key' });
  const said = JSON.stringify(r.issues) + r.notes.join('\n');
  expect(said).not.toMatch(/internal error/);
  expect(said).not.toContain(PRIV);
  expect(said).not.toContain(PASSWORD);
  expect(r.yaml).not.toContain(PASSWORD);
  if (r.ok) expect(Config.safeParse(YAML.parse(r.yaml)).success).toBe(true);
  else expect(r.yaml).toBe('');
}

const pack = (raw: Buffer, header = raw.length): string => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(header >>> 0, 0);
  return 'vpn://' + Buffer.concat([h, deflateSync(raw)]).toString('base64url');
};

const keyText = fc.oneof(
  fc.string({ maxLength: 200 }),
  nastyString,
  fc.tuple(fc.constantFrom(...GOOD), edits).map(([k, e]) => applyEdits(k, e)),
  fc.tuple(fc.constantFrom(...GOOD), fc.nat()).map(([k, n]) => k.slice(0, n % (k.length + 1))),
  fc
    .tuple(fc.constantFrom(...GOOD), fc.nat(), fc.constantFrom(' ', '\n', '=', '==', '\r\n'))
    .map(([k, n, w]) => k.slice(0, n % k.length) + w + k.slice(n % k.length)),
  bytes(0, 300).map((b) => 'vpn://' + Buffer.from(b).toString('base64url')),
);

const keyBytes = fc.oneof(
  // corrupted packed bytes
  fc
    .tuple(
      fc.constantFrom(...GOOD),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([k, flips, cut]) => {
      const b = Buffer.from(k.slice(6), 'base64url');
      for (const [at, v] of flips) b[at % b.length] = v;
      return (
        'vpn://' + (cut === undefined ? b : b.subarray(0, cut % b.length)).toString('base64url')
      );
    }),
  // any length header over a valid body
  fc.tuple(fc.constantFrom(...GOOD), fc.integer({ min: 0, max: 0xffffffff })).map(([k, h]) => {
    const b = Buffer.from(k.slice(6), 'base64url');
    b.writeUInt32BE(h, 0);
    return 'vpn://' + b.toString('base64url');
  }),
  // bombs: runs of one byte, a little past the cap or far past it, any declared size
  fc
    .tuple(
      fc.constantFrom(VPN_KEY_MAX_BYTES - 1, VPN_KEY_MAX_BYTES + 1, 8 * VPN_KEY_MAX_BYTES),
      fc.constantFrom(0x20, 0x7b, 0x00),
      fc.integer({ min: 0, max: 0xffffffff }),
    )
    .map(([n, c, h]) => pack(Buffer.alloc(n, c), h)),
);

const scalar: fc.Arbitrary<J> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  wgKey,
);
const lastConfig = fc
  .record(
    {
      config: fc.oneof(
        fc.constant(
          `[Interface]\nPrivateKey = ${PRIV}\nAddress = 10.8.1.3/32\n\n[Peer]\nPublicKey = ${HPK}\nAllowedIPs = 0.0.0.0/0\nEndpoint = h.example:1\n`,
        ),
        nastyString,
      ),
      client_priv_key: fc.oneof(fc.constant(PRIV), scalar),
      client_ip: fc.oneof(fc.constant('10.8.1.3'), scalar),
      server_pub_key: fc.oneof(wgKey, scalar),
      hostName: fc.oneof(fc.constant('h.example'), scalar),
      port: fc.oneof(fc.integer({ min: 0, max: 70000 }), scalar),
      mtu: scalar,
      allowed_ips: fc.oneof(
        fc.array(fc.constantFrom('0.0.0.0/0', '::/0', 'x'), { maxLength: 3 }),
        scalar,
      ),
      H1: scalar,
      Jc: scalar,
      S4: scalar,
    },
    { requiredKeys: [] },
  )
  .map((o) => qtToJson(o as J));
const container = fc.record(
  {
    container: fc.oneof(
      fc.constantFrom('amnezia-awg', 'amnezia-awg2', 'amnezia-wireguard', 'amnezia-xray'),
      scalar,
    ),
    awg: fc.oneof(
      fc.record(
        { last_config: fc.oneof(lastConfig, scalar), H1: scalar, Jc: scalar },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    wireguard: fc.oneof(
      fc.record({ last_config: fc.oneof(lastConfig, scalar) }, { requiredKeys: [] }),
      scalar,
    ),
  },
  { requiredKeys: [] },
);
const document = fc.record(
  {
    containers: fc.oneof(fc.array(fc.oneof(container, scalar), { maxLength: 3 }), scalar),
    defaultContainer: scalar,
    description: fc.oneof(nastyString, scalar),
    hostName: scalar,
    dns1: scalar,
    dns2: scalar,
    userName: scalar,
    password: fc.constant(PASSWORD),
    api_key: scalar,
    config_version: fc.oneof(fc.constantFrom(0, 1, 2, 3), scalar),
  },
  { requiredKeys: [] },
);

describe('fuzz: vpn:// keys', () => {
  it(
    'import/vpn-key-text: decode and import never throw untyped, never quote the key',
    { timeout: testTimeout(1) },
    () => {
      fuzzSync('import/vpn-key-text', 1, [keyText], check);
    },
  );

  it(
    'import/vpn-key-bytes: damaged bytes, any header, bombs: typed errors, bounded output',
    { timeout: testTimeout(0.5, 40) },
    () => {
      fuzzSync('import/vpn-key-bytes', 0.5, [keyBytes], check);
    },
  );

  it(
    "import/vpn-key-doc: documents near the apps' shape: what imports validates",
    { timeout: testTimeout(1) },
    () => {
      fuzzSync('import/vpn-key-doc', 1, [document, fc.boolean()], (doc, packed) => {
        const json = qtToJson(doc as J);
        check(packed ? pack(Buffer.from(json)) : json);
      });
    },
  );
});
