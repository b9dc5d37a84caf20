/** Minimal UAPI client over the engine's Unix socket (`get=1` / `set=1`). */
import { createConnection } from 'node:net';
import { AwgError } from '../../errors.js';

export function uapiRequest(path: string, request: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new AwgError('driver', `UAPI ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on('data', (d) => {
      buf += d.toString('utf8');
      const m = /(^|\n)errno=(-?\d+)\n\n$/.exec(buf);
      if (!m) return;
      clearTimeout(timer);
      c.end();
      if (m[2] !== '0') reject(new AwgError('driver', `UAPI ${path}: errno=${m[2]}`));
      else resolve(buf);
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(new AwgError('driver', `UAPI ${path}: ${e.message}`, { cause: e }));
    });
    c.write(request);
  });
}

export const uapiGet = (path: string) => uapiRequest(path, 'get=1\n\n');
export const uapiSet = (path: string, text: string) => uapiRequest(path, text);

/** `get=1` answer → device keys and peers (hex keys as given). */
export function parseGet(text: string): { device: Record<string, string>; peers: Record<string, string | string[]>[] } {
  const device: Record<string, string> = {};
  const peers: Record<string, string | string[]>[] = [];
  let cur: Record<string, string | string[]> | undefined;
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'errno') continue;
    if (k === 'public_key') {
      cur = { public_key: v, allowed_ip: [] };
      peers.push(cur);
    } else if (cur) {
      if (k === 'allowed_ip') (cur.allowed_ip as string[]).push(v);
      else cur[k] = v;
    } else device[k] = v;
  }
  return { device, peers };
}
