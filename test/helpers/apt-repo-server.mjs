// A static file server for the apt repository tests (test/netns/apt-repo.test.ts, the host
// test): serves DIR read-only on ADDRESS:PORT, prints `listening <port>` once bound (the tests
// wait for that line, not for a delay) and one `GET <path> <status>` line per request (the
// tests read which files apt fetched).
// argv: dir address port(0: any free one)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, normalize } from 'node:path';

const [dir, address = '127.0.0.1', port = '0'] = process.argv.slice(2);
const server = createServer((req, res) => {
  const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
  const file = join(dir, normalize(path).replace(/^(\.\.[/\\])+/, ''));
  let size = -1;
  try {
    const st = statSync(file);
    if (st.isFile()) size = st.size;
  } catch {
    // absent: 404
  }
  const status = req.method !== 'GET' && req.method !== 'HEAD' ? 405 : size < 0 ? 404 : 200;
  process.stdout.write(`${req.method} ${path} ${status}\n`);
  if (status !== 200) return void res.writeHead(status).end();
  res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
});
server.listen(Number(port), address, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
