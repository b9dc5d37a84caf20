/**
 * A DNS server for namespace tests, run as `node -e DNS_ZONE_SERVER ADDR ZONE_FILE` inside a
 * namespace: UDP and TCP on ADDR:53, one zone file (JSON `{name: IPv4}`, re-read per query):
 * an A record per name, AAAA empty, NXDOMAIN otherwise. It logs one JSON line per query,
 * `{q, type, from, via}`, and `{listening: true}` once both sockets are bound.
 */

export const DNS_ZONE_SERVER = String.raw`
const dgram = require('dgram'), net = require('net'), fs = require('fs');
const [addr, zoneFile] = process.argv.slice(1);
const log = (o) => process.stdout.write(JSON.stringify(o) + '\n');
function answer(q) {
  let o = 12; const labels = [];
  while (o < q.length && q[o] !== 0) { labels.push(q.subarray(o + 1, o + 1 + q[o]).toString()); o += q[o] + 1; }
  const name = labels.join('.').toLowerCase(); const type = q.readUInt16BE(o + 1); o += 5;
  const zone = JSON.parse(fs.readFileSync(zoneFile, 'utf8'));
  const h = Buffer.from(q.subarray(0, o)); h[2] = (h[2] | 0x80) & 0xf9; h[3] = 0x80; h.writeUInt16BE(0, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  if (!(name in zone)) { h[3] = 0x83; return { name, type, msg: h }; }
  if (type !== 1) return { name, type, msg: h };
  h.writeUInt16BE(1, 6);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, ...zone[name].split('.').map(Number)]);
  return { name, type, msg: Buffer.concat([h, rr]) };
}
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => { const a = answer(m); log({ q: a.name, type: a.type, from: r.address, via: 'udp' }); u.send(a.msg, r.port, r.address); });
let ready = 0; const up = () => { if (++ready === 2) log({ listening: true }); };
u.bind(53, addr, up);
net.createServer((s) => {
  let b = Buffer.alloc(0); s.on('error', () => {});
  s.on('data', (d) => { b = Buffer.concat([b, d]); if (b.length < 2 || b.length < 2 + b.readUInt16BE(0)) return;
    const a = answer(b.subarray(2, 2 + b.readUInt16BE(0))); log({ q: a.name, type: a.type, from: s.remoteAddress, via: 'tcp' });
    const l = Buffer.alloc(2); l.writeUInt16BE(a.msg.length); s.end(Buffer.concat([l, a.msg])); });
}).listen(53, addr, up);
`;

export interface DnsQuery {
  q: string;
  type: number;
  from: string;
  via: 'udp' | 'tcp';
}

/** the queries a DNS_ZONE_SERVER logged (for `name` only, when given) */
export function dnsQueries(output: string, name?: string): DnsQuery[] {
  return output.split('\n').flatMap((l) => {
    try {
      const j = JSON.parse(l) as Partial<DnsQuery>;
      return typeof j.q === 'string' && (name === undefined || j.q === name) ? [j as DnsQuery] : [];
    } catch {
      return [];
    }
  });
}
