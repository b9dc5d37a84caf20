/**
 * The HTTP API shares the gRPC socket: the first bytes decide (http/server.ts, server.ts
 * sniffProtocol). Both answer on one socket, with one authorisation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/client.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { FakeCore, sampleObservation } from './server-fake-core.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(sniffTimeoutMs?: number): Promise<{
  core: FakeCore;
  path: string;
  close: () => Promise<void>;
}> {
  const d = mkdtempSync(join(tmpdir(), 'awg-http-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  const path = join(d, 'awg.sock');
  const core = new FakeCore();
  const server = await startApiServer(core, {
    socketPath: path,
    ...(sniffTimeoutMs !== undefined ? { sniffTimeoutMs } : {}),
  });
  cleanups.push(() => server.close());
  return { core, path, close: () => server.close() };
}

export function httpOn(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ socketPath, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

describe('HTTP API on the daemon socket', () => {
  it('answers HTTP and gRPC on the same socket', async () => {
    const { core, path } = await serve();
    const r = await httpOn(path, 'GET', '/api/status');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(r.text)).toMatchObject({ state: core.statusValue.state });
    const client = await DaemonClient.open(path);
    cleanups.push(() => client.close());
    expect((await client.status()).state).toBe(core.statusValue.state);
  });

  it('GET /api/observation: the record `awg status --observed-out` writes, as the core made it', async () => {
    const { core, path } = await serve();
    const r = await httpOn(path, 'GET', '/api/observation');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual(sampleObservation());
    expect(core.calls).toEqual([{ method: 'observation' }]);
    expect((await httpOn(path, 'POST', '/api/observation')).status).toBe(405);
  });

  it('unknown paths are 404, wrong methods 405 with Allow, errors are JSON', async () => {
    const { path } = await serve();
    const nf = await httpOn(path, 'GET', '/api/nothing');
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.text)).toMatchObject({ error: { kind: 'invalid-config' } });
    const na = await httpOn(path, 'DELETE', '/api/status');
    expect(na.status).toBe(405);
    expect(na.headers.allow).toBe('GET');
  });

  it('a connection that has sent nothing yet is cut when the API closes, not left waiting', async () => {
    // silence alone would end it only after an hour: without the cut at close this test hangs
    const { path, close } = await serve(3_600_000);
    const sock = connect(path);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    // it is accepted (a request on another connection is answered after it) but silent
    expect((await httpOn(path, 'GET', '/api/status')).status).toBe(200);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => {});
    await close();
    await closed;
    expect(sock.destroyed).toBe(true);
  });
});
