/**
 * `awg ui` in a real browser (docs/ui.md): Debian's chromium, driven by playwright-core (no
 * browser download), against `awg daemon` in a namespace with a WireGuard tunnel to a peer in
 * another. The bridge runs in the test's own namespace (the daemon's socket is a path), as
 * root and, for the read-only view, as nobody in the socket group.
 *
 * - the page shows the tunnel up with its handshake; a transfer through the tunnel (iperf3)
 *   moves its chart;
 * - a config edit shows up in the event log; a list by URL with no copy shows as pending with
 *   a banner (gone when the config drops it); as root, Diff shows a pending config's plan,
 *   Apply its result, and Confirm keeps an apply that waits for it;
 * - the daemon killed: the "service unavailable" banner; restarted: the banner goes and the
 *   page carries on (the same document: no reload);
 * - a request without the token, with a foreign Origin or a foreign Host is refused;
 * - a user in the socket group gets the read-only page, and the daemon refuses its apply;
 * - screenshots at 1280×800 and 390×844 in .test-results/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import {
  PEER_ENDPOINT,
  PEER_TUN,
  PEER_UNDERLAY,
  clientConfig,
  eventually,
  newKeys,
  startPeer,
  type Keys,
  type Topology,
} from './daemon-support.js';

const CHROMIUM = '/usr/bin/chromium';
const RESULTS = join(REPO_ROOT, '.test-results');

function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `${CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh installs it)`;
  if (process.env.CI) throw new Error(`${reason} (CI is set, so this is a failure)`);
  return reason;
}

const skip = requireNetnsPrereqs(['nft', 'iperf3', 'setpriv']) ?? browserMissing();

interface Ui {
  proc: ChildProcess;
  url: string;
  port: number;
  token: string;
  output(): string;
}

/** `awg ui --no-open` in this namespace (optionally wrapped: setpriv …); resolves with its URL */
function startUi(socket: string, wrap: string[] = []): Promise<Ui> {
  const argv = [...wrap, process.execPath, join(REPO_ROOT, 'bin', 'awg.js')];
  const proc = spawn(argv[0]!, [...argv.slice(1), 'ui', '--socket', socket, '--no-open'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '' },
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`awg ui printed no URL:\n${out}`)), 20_000);
    const take = (d: Buffer) => {
      out += d.toString();
      const m = /awg ui: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([\w-]+))/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ proc, url: m[1]!, port: Number(m[2]), token: m[3]!, output: () => out });
      }
    };
    proc.stdout.on('data', take);
    proc.stderr.on('data', take);
    proc.on('exit', (code) => reject(new Error(`awg ui exited ${code}:\n${out}`)));
  });
}

function raw(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(skip)('awg ui in chromium against a daemon in a namespace', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let sockDir: string;
  let socket: string;
  let cfg: string;
  let daemon: NsProcess | undefined;
  let ui: Ui | undefined;
  let uiNobody: Ui | undefined;
  let browser: Browser | undefined;
  let page: Page;

  const startDaemon = () => {
    const argv = awgArgv(
      t.client,
      ce,
      [
        'daemon',
        '--config',
        cfg,
        '--state-dir',
        ce.stateDir,
        '--socket',
        socket,
        '--socket-group',
        'nogroup',
      ],
      { noStateDir: true },
    );
    daemon = nsSpawn(t.client, argv[3]!, argv.slice(4), { env: ce.env });
  };
  const converged = async () =>
    (await awg(t.client, ce, ['status', '--json', '--socket', socket], { noStateDir: true }))
      .code === 0;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    mkdirSync(RESULTS, { recursive: true });
    const client = await createNetns('ui-c');
    const peer = await createNetns('ui-p');
    const v = await vethPair(client, peer, {
      addrA: '10.200.9.1/24',
      addrB: `${PEER_UNDERLAY}/24`,
    });
    t = { client, peer, clientIf: v.ifA, peerIf: v.ifB };
    await run('ip', ['-n', peer, 'addr', 'add', `${PEER_ENDPOINT}/32`, 'dev', 'lo']);
    await run('ip', ['-n', client, 'route', 'add', 'default', 'via', PEER_UNDERLAY]);
    ce = makeAwgEnv();
    pe = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
    cfg = writeConfig(ce, 'client.yaml', clientConfig(k, { keepalive: 2 }));
    // the socket's directory is traversable by everyone: the socket's mode and group decide
    sockDir = mkdtempSync(join(tmpdir(), 'awgt-ui-'));
    chmodSync(sockDir, 0o755);
    socket = join(sockDir, 'awg.sock');
    startDaemon();
    await eventually(converged, 'the daemon converges', 60_000);
    ui = await startUi(socket);
    browser = await chromium.launch({ executablePath: CHROMIUM });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  }, 110_000);

  afterAll(async () => {
    await browser?.close();
    ui?.proc.kill('SIGTERM');
    uiNobody?.proc.kill('SIGTERM');
    await daemon?.kill(5000);
    if (t) await awg(t.client, ce, ['down', '--direct']).catch(() => undefined);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
    if (sockDir) rmSync(sockDir, { recursive: true, force: true });
  });

  it('refuses a request without the token, with a foreign Origin or a foreign Host', async () => {
    const u = ui!;
    const cookie = `awg_ui_${u.port}=${u.token}`;
    const host = `127.0.0.1:${u.port}`;
    expect(await raw(u.port, '/', { host })).toBe(403);
    expect(await raw(u.port, '/api/status', { host })).toBe(403);
    expect(await raw(u.port, '/api/status', { host, cookie, origin: 'http://evil.example' })).toBe(
      403,
    );
    expect(await raw(u.port, '/api/status', { host: `evil.example:${u.port}`, cookie })).toBe(403);
    // control: the same request with the token and this origin passes
    expect(await raw(u.port, '/api/status', { host, cookie, origin: `http://${host}` })).toBe(200);
  });

  it('shows the tunnel up with its handshake; a transfer moves the chart', async () => {
    await page.goto(ui!.url);
    // the token left the address bar for a cookie
    expect(page.url()).toBe(`http://127.0.0.1:${ui!.port}/`);
    await page.evaluate('window.uiMarker = 42');
    const card = page.locator('.tunnel[data-name="vpn"]');
    await card.waitFor({ timeout: 15_000 });
    await expect.poll(() => card.getAttribute('data-health'), { timeout: 20_000 }).toBe('up');
    await expect
      .poll(() => card.getAttribute('data-handshake'), { timeout: 20_000 })
      .toMatch(/^\d+$/);
    expect(await card.locator('.meta').textContent()).toMatch(/handshake \d+ s ago/);
    expect(await page.locator('#mode').textContent()).toBe('root: can apply');

    const before = Number(await card.locator('canvas').getAttribute('data-max'));
    const server = nsSpawn(t.peer, 'iperf3', ['-s', '-1', '-B', PEER_TUN, '-p', '5301']);
    await eventually(
      async () =>
        (
          await nsExec(t.peer, 'ss', ['-ltn', 'sport = :5301'], { allowFail: true })
        ).stdout.includes('5301'),
      'iperf3 listens',
      10_000,
    );
    // in the tunnel's cgroup (`awg exec --tunnel`): the daemon's monitor counts it for the tunnel
    const transfer = awg(
      t.client,
      ce,
      [
        'exec',
        '--tunnel',
        'vpn',
        '--socket',
        socket,
        '--state-dir',
        ce.stateDir,
        '--',
        'iperf3',
        '-c',
        PEER_TUN,
        '-p',
        '5301',
        '-t',
        '6',
        '-b',
        '40M',
      ],
      { noStateDir: true },
    );
    const chartMax = async () => Number(await card.locator('canvas').getAttribute('data-max'));
    await expect.poll(chartMax, { timeout: 15_000 }).toBeGreaterThan(500_000);
    const after = await chartMax();
    expect(after).toBeGreaterThan(before);
    // the process list shows iperf3 with its route while it runs
    await expect
      .poll(() => page.locator('#processes tr[data-route="vpn"]', { hasText: 'iperf3' }).count(), {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    const done = await transfer;
    expect(done.code, show(done)).toBe(0);
    await server.kill();
    // the page follows the event stream (no polling)
    await expect
      .poll(() => page.locator('#stream').textContent(), { timeout: 10_000 })
      .toBe('live');
    await page.screenshot({ path: join(RESULTS, 'ui-1280x800.png') });
  });

  it('a config edit shows up in the event log', async () => {
    writeConfig(
      ce,
      'client.yaml',
      clientConfig(k, { keepalive: 2, extraAllowed: ['10.201.0.0/24'] }),
    );
    const entry = page.locator('#events li[data-type="config-changed"]').first();
    await entry.waitFor({ timeout: 20_000 });
    expect(await entry.textContent()).toContain(cfg);
    await page
      .locator('#events li[data-type="reconcile-finished"]')
      .first()
      .waitFor({ timeout: 20_000 });
  });

  it('a list by URL without a copy: its row says pending and the banner warns', async () => {
    // nothing listens on port 9 in the daemon's namespace: the fetch fails, no copy exists
    const url = 'http://127.0.0.1:9/awg-ui.lst';
    writeConfig(
      ce,
      'client.yaml',
      clientConfig(k, { keepalive: 2, extraAllowed: ['10.201.0.0/24'] }) +
        `rules:\n  - name: listed\n    to:\n      lists:\n        - url: ${url}\n    target: vpn\n`,
    );
    const row = page.locator('#lists tbody tr[data-state="pending"]');
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain(url);
    const banner = page.locator('#lists-banner');
    await banner.waitFor({ state: 'visible', timeout: 30_000 });
    expect(await page.locator('#lists-text').textContent()).toContain('not fetched yet');
    // back to the config the later tests expect
    writeConfig(
      ce,
      'client.yaml',
      clientConfig(k, { keepalive: 2, extraAllowed: ['10.201.0.0/24'] }),
    );
    await banner.waitFor({ state: 'hidden', timeout: 30_000 });
  });

  it('the daemon killed: "service unavailable"; restarted: the page recovers without a reload', async () => {
    await daemon!.kill(10_000);
    await page.locator('#banner').waitFor({ state: 'visible', timeout: 15_000 });
    expect(await page.locator('#banner').textContent()).toContain('Service unavailable');
    expect(await page.locator('#stream').textContent()).not.toBe('live');
    await page.screenshot({ path: join(RESULTS, 'ui-unavailable-1280x800.png') });
    startDaemon();
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 45_000 });
    await expect
      .poll(() => page.locator('#stream').textContent(), { timeout: 20_000 })
      .toBe('live');
    await expect
      .poll(() => page.locator('.tunnel[data-name="vpn"]').getAttribute('data-health'), {
        timeout: 20_000,
      })
      .toBe('up');
    // the same document all along
    expect(await page.evaluate('window.uiMarker')).toBe(42);
    const log = await page.locator('#events').textContent();
    expect(log).toContain('service unavailable');
    expect(log).toContain('service available again');
  });

  it("as root: Diff shows a pending config's plan, Apply its result, Confirm keeps a waiting apply", async () => {
    const pending = writeConfig(
      ce,
      'pending.yaml',
      clientConfig(k, { keepalive: 2, extraAllowed: ['10.201.0.0/24', '10.202.0.0/24'] }),
    );
    await page.locator('#config-path').fill(pending);
    expect(await page.locator('#apply').isDisabled()).toBe(true);
    await page.locator('#diff').click();
    await expect.poll(() => page.locator('#plan .outcome').textContent()).toBe('Plan');
    expect(await page.locator('#plan').textContent()).toContain('10.202.0.0/24');
    await page.locator('#apply').click();
    await expect
      .poll(() => page.locator('#plan .outcome').textContent(), { timeout: 30_000 })
      .toMatch(/^Applied: converged, [1-9]\d* mutation\(s\)$/);
    const routes = await nsExec(t.client, 'ip', ['-4', 'route', 'show', 'table', 'all']);
    expect(routes.stdout).toContain('10.202.0.0/24');

    // an apply that waits for its confirm (from the CLI): the page offers Confirm, and it keeps it
    const trial = writeConfig(
      ce,
      'trial.yaml',
      clientConfig(k, { keepalive: 2, extraAllowed: ['10.201.0.0/24', '10.203.0.0/24'] }),
    );
    const a = await awg(
      t.client,
      ce,
      ['apply', '-f', trial, '--confirm-timeout', '120', '--socket', socket],
      { noStateDir: true },
    );
    expect(a.code, show(a)).toBe(0);
    await page.locator('#confirm').waitFor({ state: 'visible', timeout: 15_000 });
    await page.locator('#events li[data-type="confirm-pending"]').first().waitFor();
    await page.locator('#confirm').click();
    await expect.poll(() => page.locator('#plan .outcome').textContent()).toBe('Confirmed');
    await page.locator('#confirm').waitFor({ state: 'hidden', timeout: 15_000 });
  });

  it('fits a phone-sized window', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    // no horizontal scrolling of the page itself
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(RESULTS, 'ui-390x844.png'), fullPage: true });
  });

  it('a socket-group member gets the read-only page; the daemon refuses its apply', async () => {
    uiNobody = await startUi(socket, [
      'setpriv',
      '--reuid',
      '65534',
      '--regid',
      '65534',
      '--clear-groups',
      '--',
    ]);
    const p = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
    await p.goto(uiNobody.url);
    await p.locator('.tunnel[data-name="vpn"]').waitFor({ timeout: 15_000 });
    expect(await p.locator('#mode').textContent()).toBe('read-only');
    expect(await p.locator('#pending-section').isHidden()).toBe(true);
    expect(await p.locator('#readonly-note').isVisible()).toBe(true);
    const status = await p.evaluate(async (configPath) => {
      const r = await fetch('/api/apply', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ configPath }),
      });
      return r.status;
    }, cfg);
    expect(status).toBe(403);
    await p.close();
  });
});
