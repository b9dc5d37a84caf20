// An application for test/netns/domain-rules.test.ts (plain JS: starts fast, runs as any
// uid): resolves NAME (type A or AAAA) at RESOLVER over udp or tcp, prints the answer's
// addresses and the time the lookup took, then (with CONNECT=port) connects to the first
// address at once and holds the connection HOLD ms.
// argv: resolver name type(A|AAAA) transport(udp|tcp)
import { createSocket } from 'node:dgram';
import { setTimeout, clearTimeout } from 'node:timers';
import { connect } from 'node:net';

const [resolver, name, type = 'A', transport = 'udp'] = process.argv.slice(2);
const qtype = type === 'AAAA' ? 28 : 1;
const labels = name.split('.').map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l)]));
const q = Buffer.concat([
  Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...labels,
  Buffer.from([0, 0, qtype, 0, 1]),
]);
const v6 = resolver.includes(':');

function addrs(r) {
  const out = [];
  let o = 12;
  while (r[o] !== 0) o += r[o] + 1;
  o += 5;
  for (let n = r.readUInt16BE(6); n > 0; n--) {
    if ((r[o] & 0xc0) === 0xc0) o += 2;
    else {
      while (r[o] !== 0) o += r[o] + 1;
      o += 1;
    }
    const t = r.readUInt16BE(o);
    const len = r.readUInt16BE(o + 8);
    const d = r.subarray(o + 10, o + 10 + len);
    if (t === 1) out.push([...d].join('.'));
    if (t === 28) {
      const g = [];
      for (let i = 0; i < 16; i += 2) g.push(d.readUInt16BE(i).toString(16));
      out.push(g.join(':'));
    }
    o += 10 + len;
  }
  return out;
}

const ask = () =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer')), 5000);
    if (transport === 'udp') {
      const s = createSocket(v6 ? 'udp6' : 'udp4');
      s.on('message', (m) => {
        clearTimeout(timer);
        s.close();
        resolve(m);
      });
      s.send(q, 53, resolver);
    } else {
      const s = connect(53, resolver, () => {
        const h = Buffer.alloc(2);
        h.writeUInt16BE(q.length);
        s.write(Buffer.concat([h, q]));
      });
      let buf = Buffer.alloc(0);
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(timer);
          s.destroy();
          resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        }
      });
      s.on('error', reject);
    }
  });
// COUNT > 1: that many lookups in a row, `ms` is their median (the process's start-up aside)
const times = [];
let answer;
for (let i = 0; i < Number(process.env.COUNT ?? 1); i++) {
  const t0 = process.hrtime.bigint();
  answer = await ask();
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
const list = addrs(answer);
process.stdout.write(`${JSON.stringify({ addrs: list, ms, rcode: answer[3] & 15 })}\n`);
const port = Number(process.env.CONNECT ?? 0);
if (port && list.length) {
  const c = connect(port, list[0]);
  c.on('error', (e) => {
    process.stdout.write(`connect error ${e.message}\n`);
    process.exit(1);
  });
  c.on('connect', () => {
    process.stdout.write('connected\n');
    setTimeout(
      () => {
        c.destroy();
        process.stdout.write('closed\n');
        process.exit(0);
      },
      Number(process.env.HOLD ?? 0),
    );
  });
}
