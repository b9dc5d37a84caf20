/**
 * An engine the host cannot run stops `prepare` before anything is applied, located like a
 * config error but of kind `unsupported`: Linux without the WireGuard module, an external
 * program that is missing, not a regular file or not executable, and macOS for both. The
 * probes themselves (external programs on the file system; the kernel module is asked of
 * generic netlink, test/netns/engine-external.test.ts) and `awg engine`'s two command lines.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { engineMode } from '../../../src/cli/commands/engine.js';
import { Config } from '../../../src/config/schema.js';
import { formatIssue } from '../../../src/errors.js';
import { prepare } from '../../../src/pipeline/prepare.js';
import { darwinEngineProblems } from '../../../src/resources/platform/darwin.js';
import { enginesNamed, externalProgramProblem } from '../../../src/resources/facts.js';

const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'awg-engine-facts-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const yaml = (engines: Record<string, string>) =>
  `version: 1
tunnels:
${Object.entries(engines)
  .map(
    ([name, engine], i) => `  ${name}:
    type: wireguard
    engine: ${engine}
    privateKey: { env: KEY }
    addresses: [10.9.${i}.2/32]
    peers:
      - publicKey: ${PEER}
        allowedIPs: [10.${i + 1}.0.0/16]
`,
  )
  .join('')}`;

describe('prepare: engines this host cannot run', () => {
  it('stops with located `unsupported` issues, in source order, before the model is built', async () => {
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, yaml({ work: 'kernel', ext: '{ external: /opt/nope/amneziawg-go }' }));
    const r = await prepare(file, {
      env: { KEY: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=' },
      facts: {
        engineProblems: {
          kernel:
            "kernel needs Linux's WireGuard module (modprobe wireguard); this kernel has none (no family)",
          external: { '/opt/nope/amneziawg-go': '/opt/nope/amneziawg-go does not exist' },
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.kind).toBe('unsupported');
    expect(r.issues.map(formatIssue)).toEqual([
      `${file}:5:13: tunnels.work.engine: kernel needs Linux's WireGuard module (modprobe wireguard); this kernel has none (no family)`,
      `${file}:13:25: tunnels.ext.engine.external: /opt/nope/amneziawg-go does not exist`,
    ]);
  });

  it('problems of engines the config does not use change nothing', async () => {
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, yaml({ work: 'embedded' }));
    const r = await prepare(file, {
      env: { KEY: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=' },
      facts: { engineProblems: { kernel: 'none here', external: { '/x': 'missing' } } },
    });
    expect(r.ok).toBe(true);
  });
});

describe('the probes', () => {
  it('enginesNamed: the kernel and each program once', () => {
    const c = Config.parse({
      version: 1,
      tunnels: Object.fromEntries(
        [
          ['a', 'kernel'],
          ['b', { external: '/usr/bin/wireguard-go' }],
          ['c', { external: '/usr/bin/wireguard-go', uapiDir: '/run/x' }],
          ['d', 'embedded'],
        ].map(([n, engine], i) => [
          n,
          {
            type: 'wireguard',
            engine,
            privateKey: 'k',
            addresses: [`10.9.${i}.2/32`],
            peers: [{ publicKey: PEER }],
          },
        ]),
      ),
    });
    expect(enginesNamed(c)).toEqual({ kernel: true, external: ['/usr/bin/wireguard-go'] });
    expect(enginesNamed(undefined)).toEqual({ kernel: false, external: [] });
  });

  it('externalProgramProblem: missing, a directory, not executable; an executable file passes', async () => {
    const exe = join(dir, 'engine');
    writeFileSync(exe, '#!/bin/sh\n', { mode: 0o755 });
    chmodSync(exe, 0o755);
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'x', { mode: 0o644 });
    mkdirSync(join(dir, 'd'));
    expect(await externalProgramProblem(exe)).toBeUndefined();
    expect(await externalProgramProblem(join(dir, 'nope'))).toBe(
      `${join(dir, 'nope')} does not exist`,
    );
    expect(await externalProgramProblem(join(dir, 'd'))).toBe(
      `${join(dir, 'd')} is not a regular file (a directory)`,
    );
    // root may read anything but executes only files with an execute bit
    expect(await externalProgramProblem(plain)).toBe(`${plain} is not executable`);
  });

  it('macOS: the kernel engine and external programs are unsupported', () => {
    const c = Config.parse({
      version: 1,
      tunnels: {
        k: {
          type: 'wireguard',
          engine: 'kernel',
          privateKey: 'k',
          addresses: ['10.9.0.2/32'],
          peers: [{ publicKey: PEER }],
        },
        x: {
          type: 'amneziawg',
          engine: { external: '/opt/amneziawg-go' },
          privateKey: 'k',
          addresses: ['10.9.1.2/32'],
          peers: [{ publicKey: PEER }],
        },
      },
    });
    const p = darwinEngineProblems(c).engineProblems!;
    expect(p.kernel).toMatch(/^kernel is not supported on macOS/);
    expect(p.external!['/opt/amneziawg-go']).toMatch(
      /^an external engine is not supported on macOS/,
    );
    expect(darwinEngineProblems(Config.parse({ version: 1 }))).toEqual({});
  });
});

describe('awg engine: stdin mode and the wireguard-go convention', () => {
  it('-f IFACE: the socket in AWG_UAPI_DIR or /var/run/wireguard, no stdin', () => {
    expect(engineMode({ foreground: 'awg-x' }, {})).toEqual({
      link: 'awg-x',
      uapi: '/var/run/wireguard/awg-x.sock',
      stdin: false,
    });
    expect(engineMode({ foreground: 'awg-x' }, { AWG_UAPI_DIR: '/run/t' })).toMatchObject({
      uapi: '/run/t/awg-x.sock',
    });
    expect(engineMode({ iface: 'wg0' }, { WG_PROCESS_FOREGROUND: '1' })).toMatchObject({
      link: 'wg0',
    });
  });

  it('--link and --uapi: configuration on stdin, as the engine driver starts it', () => {
    expect(engineMode({ link: 'awg-x', uapi: '/s' }, {})).toEqual({
      link: 'awg-x',
      uapi: '/s',
      stdin: true,
    });
  });

  it('refuses to daemonize, a mix of both, and names that are no interface', () => {
    expect(engineMode({ iface: 'wg0' }, {})).toMatchObject({ error: /foreground only/ });
    expect(engineMode({ foreground: 'wg0', link: 'x' }, {})).toMatchObject({ error: /not both/ });
    expect(engineMode({ foreground: '../../etc' }, {})).toMatchObject({
      error: /not an interface name/,
    });
    expect(engineMode({ foreground: 'a-much-too-long-name' }, {})).toMatchObject({
      error: /not an interface name/,
    });
    expect(engineMode({}, {})).toMatchObject({ error: /--link NAME and --uapi PATH/ });
  });
});
