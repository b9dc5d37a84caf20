/** Minimal UAPI client over the engine's Unix socket (`get=1` / `set=1`). */
import { createConnection } from 'node:net';
import { AwgError } from '../../errors.js';
import { UAPI_CONTROL, UAPI_GET_REQUEST, UAPI_KEY } from '../../dataplane/device/uapi-text.js';

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

export const uapiGet = (path: string) => uapiRequest(path, UAPI_GET_REQUEST);
export const uapiSet = (path: string, text: string) => uapiRequest(path, text);

/**
 * `get=1` answer → device keys and peers (hex keys as given). Strict, as the engine's own
 * parser: every line up to `errno=N` and the blank line that ends the reply is `key=value`
 * with a `[a-z0-9_]` key and no control character; anything else throws (driver), so a
 * garbled or hostile reply is never read as a configuration.
 */
export function parseGet(text: string): {
  device: Record<string, string>;
  peers: Record<string, string | string[]>[];
} {
  const device: Record<string, string> = {};
  const peers: Record<string, string | string[]>[] = [];
  let cur: Record<string, string | string[]> | undefined;
  const lines = text.split('\n');
  const fail = (why: string) => new AwgError('driver', `malformed UAPI reply: ${why}`);
  if (lines.length < 3 || lines.at(-1) !== '' || lines.at(-2) !== '')
    throw fail('not ended by a blank line');
  const body = lines.slice(0, -2);
  if (!/^errno=-?\d+$/.test(body.at(-1) ?? '')) throw fail('no errno line at the end');
  for (const line of body.slice(0, -1)) {
    const i = line.indexOf('=');
    const k = i < 0 ? '' : line.slice(0, i);
    const v = line.slice(i + 1);
    if (!UAPI_KEY.test(k) || UAPI_CONTROL.test(v) || k === 'errno')
      throw fail(`line ${JSON.stringify(line.slice(0, 80))}`);
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
