import { describe, expect, it } from 'vitest';
import {
  AllowedIPs,
  formatPrefix,
  parsePrefix,
  type Prefix,
} from '../../../src/dataplane/device/allowedips.js';
import { seededRandom } from '../../../src/dataplane/awg/random.fake.js';

/** The naive reference: scan every prefix, keep the longest that matches. */
class LinearTable<T> {
  entries = new Map<string, { p: Prefix; v: T }>();
  insert(p: Prefix, v: T) {
    this.entries.set(formatPrefix(p), { p, v });
  }
  remove(p: Prefix, v?: T) {
    const k = formatPrefix(p);
    const e = this.entries.get(k);
    if (e && (v === undefined || e.v === v)) this.entries.delete(k);
  }
  removeValue(v: T) {
    for (const [k, e] of this.entries) if (e.v === v) this.entries.delete(k);
  }
  lookup(addr: Uint8Array): T | null {
    let best: { p: Prefix; v: T } | null = null;
    for (const e of this.entries.values()) {
      if (e.p.bytes.length !== addr.length) continue;
      if (!matches(e.p, addr)) continue;
      if (!best || e.p.bits > best.p.bits) best = e;
    }
    return best ? best.v : null;
  }
}

function matches(p: Prefix, addr: Uint8Array): boolean {
  for (let i = 0; i < p.bits; i++) {
    const bit = (b: Uint8Array) => (b[i >> 3]! >> (7 - (i & 7))) & 1;
    if (bit(p.bytes) !== bit(addr)) return false;
  }
  return true;
}

describe('allowed IPs trie', () => {
  it('parses, canonicalises and formats prefixes', () => {
    expect(formatPrefix(parsePrefix('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatPrefix(parsePrefix('192.168.1.1'))).toBe('192.168.1.1/32');
    expect(formatPrefix(parsePrefix('fd00::1:2/64'))).toBe('fd00::/64');
    expect(formatPrefix(parsePrefix('::/0'))).toBe('::/0');
    for (const bad of ['10.0.0.0/33', '1.2.3/8', 'fd00::/129', 'x', '10.0.0.0/8/1', '10.0.0.0/-1'])
      expect(() => parsePrefix(bad)).toThrow();
  });

  it('longest-prefix match, v4 and v6 kept apart', () => {
    const t = new AllowedIPs<string>();
    t.insert(parsePrefix('0.0.0.0/0'), 'default');
    t.insert(parsePrefix('10.0.0.0/8'), 'a');
    t.insert(parsePrefix('10.1.0.0/16'), 'b');
    t.insert(parsePrefix('::/0'), 'v6');
    const l = (s: string) => t.lookup(parsePrefix(s).bytes);
    expect(l('10.1.2.3')).toBe('b');
    expect(l('10.2.0.1')).toBe('a');
    expect(l('8.8.8.8')).toBe('default');
    expect(l('2001:db8::1')).toBe('v6');
    t.insert(parsePrefix('10.1.0.0/16'), 'c'); // re-point
    expect(l('10.1.2.3')).toBe('c');
    expect(t.remove(parsePrefix('10.1.0.0/16'), 'b')).toBe(false); // not owner
    expect(t.remove(parsePrefix('10.1.0.0/16'), 'c')).toBe(true);
    expect(l('10.1.2.3')).toBe('a');
    t.removeValue('a');
    expect(l('10.1.2.3')).toBe('default');
    expect(t.entriesFor('default').map(formatPrefix)).toEqual(['0.0.0.0/0']);
  });

  it('repeated lookups of the same addresses (the kept last lookup) follow every change', () => {
    // one flow's packets repeat an address: the last IPv4 and IPv6 answers are kept, and must
    // never outlive an insert, a remove or a removeValue, nor alias the caller's bytes
    const rng = seededRandom(7);
    const trie = new AllowedIPs<number>();
    const ref = new LinearTable<number>();
    const hot = ['10.1.2.3', '10.1.2.4', '10.1.0.0', 'fd00::1', 'fd00::2', 'fd00:1::1'].map(
      (a) => parsePrefix(a).bytes,
    );
    const prefixes = [
      '10.0.0.0/8',
      '10.1.0.0/16',
      '10.1.2.0/24',
      '10.1.2.3/32',
      '0.0.0.0/0',
      'fd00::/16',
      'fd00::/64',
      'fd00::1/128',
      '::/0',
      'fd00:1::/32',
    ].map(parsePrefix);
    for (let round = 0; round < 2000; round++) {
      const p = prefixes[rng.intn(prefixes.length)]!;
      const v = rng.intn(4);
      const op = rng.intn(7);
      // an address looked up just before the change, and first again after it
      const last = hot[rng.intn(hot.length)]!;
      expect(trie.lookup(last)).toBe(ref.lookup(last));
      if (op < 4) {
        trie.insert(p, v);
        ref.insert(p, v);
      } else if (op < 6) {
        trie.remove(p, op === 4 ? v : undefined);
        ref.remove(p, op === 4 ? v : undefined);
      } else {
        trie.removeValue(v);
        ref.removeValue(v);
      }
      expect(trie.lookup(last)).toBe(ref.lookup(last));
      for (const a of hot) {
        expect(trie.lookup(a)).toBe(ref.lookup(a));
        expect(trie.lookup(a)).toBe(ref.lookup(a));
      }
      // lookupAt: the same answers for the address inside a packet, at any offset
      const off = rng.intn(24);
      for (const h of hot) {
        const pkt = new Uint8Array(off + h.length + 3).fill(0xee);
        pkt.set(h, off);
        expect(trie.lookupAt(pkt, off, h.length as 4 | 16)).toBe(ref.lookup(h));
      }
      // the caller's array changed in place after a lookup: the answer follows the new bytes
      const a = Uint8Array.from(hot[rng.intn(hot.length)]!);
      trie.lookup(a);
      a[a.length - 1] = rng.intn(256);
      expect(trie.lookup(a)).toBe(ref.lookup(a));
    }
  });

  it('differential test against a linear scan on random data', () => {
    const rng = seededRandom(42);
    const trie = new AllowedIPs<number>();
    const ref = new LinearTable<number>();
    const randPrefix = (): Prefix => {
      const v6 = rng.intn(3) === 0;
      const len = v6 ? 16 : 4;
      // cluster addresses so that prefixes nest and overlap often
      const bytes = rng.bytes(len);
      bytes[0] = v6 ? 0xfd : 10;
      if (len > 1) bytes[1]! &= 0x03;
      const bits = rng.intn(len * 8 + 1);
      return parsePrefix(`${v6 ? ipv6str(bytes) : Array.from(bytes).join('.')}/${bits}`);
    };
    const randAddr = (): Uint8Array => {
      const v6 = rng.intn(3) === 0;
      const b = rng.bytes(v6 ? 16 : 4);
      b[0] = v6 ? 0xfd : 10;
      b[1]! &= 0x03;
      return b;
    };
    for (let round = 0; round < 3000; round++) {
      const op = rng.intn(10);
      if (op < 6) {
        const p = randPrefix();
        const v = rng.intn(8);
        trie.insert(p, v);
        ref.insert(p, v);
      } else if (op < 8) {
        const p = randPrefix();
        const v = rng.intn(8);
        trie.remove(p, v);
        ref.remove(p, v);
      } else if (op === 8 && rng.intn(20) === 0) {
        const v = rng.intn(8);
        trie.removeValue(v);
        ref.removeValue(v);
      }
      for (let q = 0; q < 5; q++) {
        const a = randAddr();
        expect(trie.lookup(a)).toBe(ref.lookup(a));
      }
    }
    for (let v = 0; v < 8; v++) {
      const fromTrie = trie.entriesFor(v).map(formatPrefix).sort();
      const fromRef = [...ref.entries.values()]
        .filter((e) => e.v === v)
        .map((e) => formatPrefix(e.p))
        .sort();
      expect(fromTrie).toEqual(fromRef);
    }
  });
});

function ipv6str(b: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return parts.join(':');
}
