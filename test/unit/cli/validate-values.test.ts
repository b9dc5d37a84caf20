/**
 * `awg validate` refuses config values that would reach a text format (UAPI lines, nft text,
 * `ip -batch`, resolv.conf) outside their grammar, each at its file:line:col, and applies
 * nothing. Before: `i1` accepted any string (a newline added UAPI lines: a new peer taking
 * 0.0.0.0/0), `010.0.0.1` was taken as a DNS server (and read as 8.0.0.1), a proxy server
 * was any string and match strings could hold line breaks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { tempDir } from '../../helpers/tmp.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const EVIL = 'c5320103dadba14be71f886da1d8dbe9eebded08cb111b75340078999aa9f038';

async function validate(
  yaml: string,
  files: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string; file: string }> {
  const dir = tempDir('awg-values-');
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, yaml);
  for (const [name, text] of Object.entries(files))
    writeFileSync(join(dir, name), text, { mode: 0o600 });
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(
    [
      'node',
      'awg',
      'validate',
      '-f',
      file,
      ...(Object.keys(files).length ? [] : ['--skip-secrets']),
    ],
    io,
  );
  return { code, out, err, file };
}

const awg = (obfuscation: string, extra = '') => `version: 1
tunnels:
  vpn:
    type: amneziawg
    privateKey: "${PRIV}"
    addresses: [10.0.0.2/32]
    dns: [10.0.0.1]
    peers:
      - publicKey: "${PEER}"
        endpoint: 192.0.2.1:51820
        allowedIPs: [10.0.0.0/24]
    obfuscation:
${obfuscation}
${extra}`;

describe('awg validate: values reaching text formats', () => {
  it('an i1 with a newline (a smuggled UAPI peer) is refused at its file:line:col', async () => {
    const r = await validate(
      awg(`      i1: "<b 0x01>\\npublic_key=${EVIL}\\nallowed_ip=0.0.0.0/0"`),
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(
      `${r.file}:13:11: tunnels.vpn.obfuscation.i1: must not contain control characters`,
    );
    expect(r.err).toMatch(/nothing was applied/);
  });

  it('an i-value with text outside its tags, or a carriage return, is refused; tags alone pass', async () => {
    const r = await validate(
      awg('      i2: "<b 0x01> junk <r 4>"\n      i3: "<t>\\r"\n      i4: "<b 0xzz>"'),
    );
    expect(r.err).toMatch(/:13:11: tunnels\.vpn\.obfuscation\.i2: text outside tags \("junk"\)/);
    expect(r.err).toMatch(
      /:14:11: tunnels\.vpn\.obfuscation\.i3: must not contain control characters/,
    );
    expect(r.err).toMatch(
      /:15:11: tunnels\.vpn\.obfuscation\.i4: <b> needs an even-length hex argument/,
    );
    const ok = await validate(
      awg('      i1: "<b 0xc0ffee><r 16> <rc 4><rd 2><t>"\n      i2: "<b c0ffee>"'),
    );
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
  });

  it('a DNS server must be a canonical IP literal: 010.0.0.1 (read as 8.0.0.1), 10.1, 0x0a.0.0.1, FD00::1, a zone are refused', async () => {
    const yaml = awg('      jc: 0').replace(
      'dns: [10.0.0.1]',
      'dns: [010.0.0.1, "10.1", 0x0a.0.0.1, "FD00::1", "fe80::1%eth0", "::ffff:1.2.3.4", 10.0.0.1, "fd00::53"]',
    );
    const r = await validate(yaml);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(
      `${r.file}:7:11: tunnels.vpn.dns[0]: "010.0.0.1" is ambiguous (ipaddr.js and inet_aton read it as 8.0.0.1)`,
    );
    expect(r.err).toMatch(/tunnels\.vpn\.dns\[1\]: "10\.1" is ambiguous/);
    expect(r.err).toMatch(/tunnels\.vpn\.dns\[2\]: "0x0a\.0\.0\.1" is ambiguous/);
    expect(r.err).toMatch(/tunnels\.vpn\.dns\[3\]: write the address canonically: "fd00::1"/);
    expect(r.err).toMatch(/tunnels\.vpn\.dns\[4\]: must be an IP address without a zone/);
    expect(r.err).toMatch(/tunnels\.vpn\.dns\[5\]: must be an IPv6 address in hex groups/);
    expect(r.err).not.toMatch(/dns\[6\]|dns\[7\]/);
  });

  it('endpoints and proxy servers are host names or IP literals; proxy user names hold no control characters', async () => {
    const yaml = awg(
      '      jc: 0',
      `  px:
    type: http
    server: "proxy.example.com\\nnameserver 1.1.1.1"
    auth: { username: "a:b", password: x }
  sx:
    type: socks5
    server: "-bad-.example"
    auth: { username: "u\\r\\nX-Injected: 1", password: x }
  ok:
    type: socks5
    server: "fd00::1080"
`,
    ).replace('endpoint: 192.0.2.1:51820', 'endpoint: "010.0.0.1:51820"');
    const r = await validate(yaml);
    expect(r.err).toMatch(
      /:10:19: tunnels\.vpn\.peers\[0\]\.endpoint: the host must be a dotted-quad IPv4 address without leading zeros or an RFC 1123 host name/,
    );
    expect(r.err).toMatch(/tunnels\.px\.server: must be an RFC 1123 host name/);
    expect(r.err).toMatch(
      /tunnels\.px\.auth\.username: an HTTP Basic user name cannot contain ":"/,
    );
    expect(r.err).toMatch(/tunnels\.sx\.server: must be an RFC 1123 host name/);
    expect(r.err).toMatch(/tunnels\.sx\.auth\.username: must not contain control characters/);
    expect(r.err).not.toMatch(/tunnels\.ok/);
  });

  it('match strings hold no control characters; a regex the linear engine cannot run is refused; (a+)+$ is accepted (linear)', async () => {
    const yaml = awg(
      '      jc: 0',
      `rules:
  - match: { name: "fire\\nfox" }
    target: vpn
  - match: { regex: "(a)\\\\1" }
    target: vpn
  - match: { regex: "(?<=/usr)/bin" }
    target: vpn
  - match: { regex: "(a+)+$" }
    target: vpn
`,
    );
    const r = await validate(yaml);
    expect(r.err).toMatch(/:15:20: rules\[0\]\.match\.name: must not contain control characters/);
    expect(r.err).toMatch(
      /:17:21: rules\[1\]\.match\.regex: unsupported regular expression: backreferences/,
    );
    expect(r.err).toMatch(
      /:19:21: rules\[2\]\.match\.regex: unsupported regular expression: lookahead and lookbehind are not supported/,
    );
    expect(r.err).not.toMatch(/rules\[3\]/);
  });

  it('path globs: at most 3 "*"/"{…}" per segment, no extglobs or groups (picomatch backtracks: 371 s for 8 stars on 80 characters)', async () => {
    const yaml = awg(
      '      jc: 0',
      `rules:
  - match: { path: "/*a*a*a*a*a*a*a*a*b" }
    target: vpn
  - match: { path: "/opt/+(a|aa)b" }
    target: vpn
  - match: { path: "/**/{x,y}*a*b*c" }
    target: vpn
  - match: { path: "/home/*/.local/bin/*" }
    target: vpn
  - match: { path: "/usr/{bin,local/bin}/{curl,wget}*" }
    target: vpn
  - match: { path: '/**/*a*b/**/x\\(86\\)*' }
    target: vpn
`,
    );
    const r = await validate(yaml);
    expect(r.err).toMatch(
      /:15:20: rules\[0\]\.match\.path: at most 3 "\*" and "\{…\}" per path segment/,
    );
    expect(r.err).toMatch(/:17:20: rules\[1\]\.match\.path: extglobs and groups are not supported/);
    expect(r.err).toMatch(/:19:20: rules\[2\]\.match\.path: at most 3/);
    expect(r.err).not.toMatch(/rules\[[345]\]/);
  });

  it('addresses and allowed IPs: no IPv6 zone, no dotted IPv4 inside IPv6', async () => {
    const yaml = awg('      jc: 0')
      .replace('addresses: [10.0.0.2/32]', 'addresses: [10.0.0.2/32, "fe80::2%eth0/64"]')
      .replace('allowedIPs: [10.0.0.0/24]', 'allowedIPs: [10.0.0.0/24, "::1.2.3.4/128"]');
    const r = await validate(yaml);
    expect(r.err).toMatch(/tunnels\.vpn\.addresses\[1\]: write IPv6 without a zone/);
    expect(r.err).toMatch(/tunnels\.vpn\.peers\[0\]\.allowedIPs\[1\]: write IPv6 without a zone/);
  });

  it('a proxy password (resolved secret) with a control character or over 255 bytes is refused at its location', async () => {
    const yaml = `version: 1
tunnels:
  a:
    type: socks5
    server: proxy.example.com
    auth: { username: u, password: { file: nul.pw } }
  b:
    type: http
    server: proxy.example.com
    auth: { username: u, password: { file: long.pw } }
  c:
    type: http
    server: proxy.example.com
    auth: { username: u, password: { file: ok.pw } }
`;
    const r = await validate(yaml, {
      'nul.pw': 'pass\u0000word\n',
      'long.pw': 'x'.repeat(256),
      'ok.pw': 'p:ss w0rd\n',
    });
    expect(r.err).toMatch(
      /:6:36: tunnels\.a\.auth\.password: secret \(file nul\.pw\) must be at most 255 bytes with no control characters/,
    );
    expect(r.err).toMatch(
      /:10:36: tunnels\.b\.auth\.password: secret \(file long\.pw\) must be at most 255 bytes/,
    );
    expect(r.err).not.toMatch(/tunnels\.c\./);
  });
});
