/**
 * The repository's full-tunnel example on a booted Debian 12 host, installed from the .deb as
 * the README says: DNS through the tunnel where systemd-resolved owns it, the boot kill switch
 * from the first frame of a reboot, and `apt remove` leaving nothing of ours.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/awg.js';
import { Capture } from './capture.js';
import { ensureDeb, requireHostPrereqs } from './deb.js';
import { HTTP_PORT, Host, LAN, Lab, VPN, until } from './lab.js';

const skip = requireHostPrereqs();

describe.skipIf(skip)('full tunnel on a booted Debian 12 host', () => {
  let lab: Lab;
  let host: Host;
  beforeAll(async () => {
    const deb = await ensureDeb();
    lab = await Lab.create('ft');
    host = await Host.boot(lab);
    await host.installDeb(deb);
  });
  afterAll(async () => {
    await host?.destroy();
    await lab?.destroy();
  });

  it('boots with resolved and NetworkManager, the LAN reachable directly', async () => {
    const r = await host.run([
      'curl',
      '-sS',
      '--max-time',
      '5',
      `http://${LAN.router}:${HTTP_PORT}/x`,
    ]);
    expect(r.stdout).toBe('lan /x\n');
    const st = await host.run(['resolvectl', 'query', 'www.lan.test'], { allowFail: true });
    expect(st.out).toContain(LAN.router);
  });
});
