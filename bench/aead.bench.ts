/**
 * Step 10 item 3: the per-packet cost of the transport AEAD (ChaCha20-Poly1305, 1420-byte
 * packets, one core): node:crypto's `createCipheriv`/`createDecipheriv` per packet (what the
 * engine did through Step 9) against libcrypto's EVP through koffi with one context per key,
 * re-keyed per packet with the nonce only (native/libcrypto-aead.ts, the engine's default now). Both
 * through the engine's own entry points (`sealInto`/`openWithNonce` of crypto/aead.ts), the
 * node path selected with AWG_AEAD=node in a child process; alternated, several runs.
 *
 * Also X25519 from raw 32-byte keys (the handshake's five DHs and two public keys): node:crypto
 * through DER-wrapped KeyObjects against libcrypto's EVP_PKEY raw-key calls (AWG_X25519).
 *
 * Run: `npx tsx bench/aead.bench.ts [--smoke]`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { machine, median, printSamples, type Sample } from './lib.js';

const SELF = fileURLToPath(import.meta.url);

/** one measurement in this process: µs per packet for seal and open, µs per X25519 DH and public key */
async function once(packets: number): Promise<{
  seal: number;
  open: number;
  dh: number;
  pub: number;
  dhImported: number;
  decodePriv: number;
  decodePub: number;
  dhObjects: number;
  impl: string;
}> {
  const { sealInto, openWithNonce, writeNonce, TAG_SIZE } =
    await import('../src/dataplane/crypto/aead.js');
  const { evpAead } = await import('../src/native/libcrypto-aead.js');
  const key = randomBytes(32);
  const pkt = randomBytes(1420);
  const nonce = Buffer.alloc(12);
  const out = Buffer.alloc(16 + pkt.length + TAG_SIZE);
  for (let i = 0; i < 2000; i++) sealInto(key, writeNonce(nonce, i), pkt, 0, out, 16);
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < packets; i++) sealInto(key, writeNonce(nonce, i), pkt, 0, out, 16);
  const seal = Number(process.hrtime.bigint() - t0) / packets / 1000;
  const sealed = out.subarray(16);
  writeNonce(nonce, packets - 1);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < packets; i++)
    if (!openWithNonce(key, nonce, sealed)) throw new Error('open failed');
  const open = Number(process.hrtime.bigint() - t0) / packets / 1000;
  const { sharedSecret, publicKey, importPrivateKey } =
    await import('../src/dataplane/crypto/x25519.js');
  const sk = randomBytes(32);
  const pk = publicKey(randomBytes(32));
  const n = Math.max(50, packets / 200);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sharedSecret(sk, pk);
  const dh = Number(process.hrtime.bigint() - t0) / n / 1000;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) publicKey(sk);
  const pub = Number(process.hrtime.bigint() - t0) / n / 1000;
  // the device's static key and a handshake's ephemeral: imported once, then one DH each
  const imported = importPrivateKey(sk);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sharedSecret(imported, pk);
  const dhImported = Number(process.hrtime.bigint() - t0) / n / 1000;
  // where node:crypto's time goes: decoding the DER-wrapped raw keys, and the DH on KeyObjects
  const { diffieHellman } = await import('node:crypto');
  const { privateKeyObject, publicKeyObject } = await import('../src/dataplane/crypto/x25519.js');
  const time = (f: () => unknown) => {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    return Number(process.hrtime.bigint() - t) / n / 1000;
  };
  const decodePriv = time(() => privateKeyObject(sk));
  const decodePub = time(() => publicKeyObject(pk));
  const ko = privateKeyObject(sk);
  const po = publicKeyObject(pk);
  const dhObjects = time(() => diffieHellman({ privateKey: ko, publicKey: po }));
  return {
    seal,
    open,
    dh,
    pub,
    dhImported,
    decodePriv,
    decodePub,
    dhObjects,
    impl: evpAead() ? 'evp' : 'node',
  };
}

export async function aeadBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 7;
  const packets = smoke ? 2000 : 100_000;
  const keys = [
    'seal',
    'open',
    'dh',
    'pub',
    'dhImported',
    'decodePriv',
    'decodePub',
    'dhObjects',
  ] as const;
  type Key = (typeof keys)[number];
  const empty = () =>
    Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<Key, number[]>;
  const r: Record<string, Record<Key, number[]>> = { node: empty(), evp: empty() };
  for (let i = 0; i < runs; i++)
    for (const impl of ['node', 'evp'] as const) {
      const j = JSON.parse(
        execFileSync(process.execPath, ['--import', 'tsx', SELF, '--child', String(packets)], {
          encoding: 'utf8',
          env: { ...process.env, AWG_AEAD: impl, AWG_X25519: impl },
        }),
      ) as Record<Key, number> & { impl: string };
      if (j.impl !== impl)
        throw new Error(`asked for ${impl}, ran ${j.impl} (is libcrypto.so.3 there?)`);
      for (const k of keys) r[impl]![k].push(j[k]);
    }
  const out: Sample[] = [];
  for (const op of ['seal', 'open'] as const)
    for (const impl of ['node', 'evp'] as const) {
      const xs = r[impl]![op];
      const m = median(xs);
      out.push({
        name: `${op} 1420 B, ${impl === 'node' ? 'node:crypto createCipheriv per packet' : 'libcrypto EVP, reused context'}`,
        unit: 'µs/packet',
        runs: xs,
        median: m,
        note: `${((1420 * 8) / (m * 1000)).toFixed(2)} Gbit/s of payload on one core`,
      });
    }
  for (const op of ['dh', 'pub'] as const)
    for (const impl of ['node', 'evp'] as const) {
      const xs = r[impl]![op];
      out.push({
        name: `X25519 ${op === 'dh' ? 'DH' : 'public key'} from raw keys, ${impl === 'node' ? 'node:crypto (DER-wrapped KeyObjects)' : 'libcrypto EVP_PKEY raw keys'}`,
        unit: 'µs',
        runs: xs,
        median: median(xs),
      });
    }
  for (const impl of ['node', 'evp'] as const)
    out.push({
      name: `X25519 DH with an imported private key (importPrivateKey), ${impl === 'node' ? 'node:crypto KeyObject' : 'libcrypto EVP_PKEY handle'}`,
      unit: 'µs',
      runs: r[impl]!.dhImported,
      median: median(r[impl]!.dhImported),
    });
  for (const [op, what] of [
    ['decodePriv', 'node:crypto: createPrivateKey of a DER-wrapped raw X25519 key'],
    ['decodePub', 'node:crypto: createPublicKey of a DER-wrapped raw X25519 key'],
    ['dhObjects', 'node:crypto: diffieHellman on ready KeyObjects'],
  ] as const)
    out.push({ name: what, unit: 'µs', runs: r.node![op], median: median(r.node![op]) });
  return out;
}

if (process.argv[1] === SELF) {
  if (process.argv[2] === '--child') {
    process.stdout.write(JSON.stringify(await once(Number(process.argv[3]))));
  } else {
    console.log(`machine: ${machine()}`);
    printSamples('aead', await aeadBench(process.argv.includes('--smoke')));
  }
}
