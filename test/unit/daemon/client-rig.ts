/** The client-mode tests' fake daemon (an API server on a FakeCore) and temp directories. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer } from '../../../src/daemon/server.js';
import { afterThisTest } from '../../helpers/cleanup.js';
import { FakeCore } from './server-fake-core.js';

/** a private temp directory, removed after the test */
export function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-cli-api-'));
  afterThisTest(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** an API server on `core` at a private socket, closed after the test */
export async function daemon(
  core = new FakeCore(),
): Promise<{ core: FakeCore; socket: string; stop: () => Promise<void> }> {
  const socket = join(tmp(), 'awg.sock');
  const server = await startApiServer(core, { socketPath: socket });
  afterThisTest(() => server.close());
  return { core, socket, stop: () => server.close() };
}
