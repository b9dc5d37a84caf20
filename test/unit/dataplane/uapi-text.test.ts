/**
 * UAPI text has no quoting: a newline inside a value starts a line of its own. Every producer
 * builds its text through one emitter (uapi-text.ts) that refuses control characters, and
 * both parsers (the engine's set parser, the driver's get parser) refuse them too.
 * Before the emitter, `fullSetText` wrote an `i1` holding `\npublic_key=…\nallowed_ip=0.0.0.0/0`
 * verbatim: a second peer that took every destination.
 */
import { describe, expect, it } from 'vitest';
import { IPC_ERROR, parseUapiSet, serializeUapiGet } from '../../../src/dataplane/device/uapi.js';
import { uapiLine, uapiReply, uapiSetRequest } from '../../../src/dataplane/device/uapi-text.js';
import { defaultAwgParams } from '../../../src/dataplane/awg/params.js';
import type { WgEngineSpec } from '../../../src/model/resources.js';
import { parseGet } from '../../../src/resources/engine/uapi-client.js';
import { deltaSetText, fullSetText } from '../../../src/resources/engine/uapi-config.js';
import { wgKeyPair } from '../../helpers/awg.js';

const me = wgKeyPair();
const peer = wgKeyPair();
const evil = wgKeyPair();
const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

function spec(i1: string): WgEngineSpec {
  return {
    tunnel: 'vpn',
    type: 'amneziawg',
    link: 'awg-vpn',
    config: {
      privateKey: 'fp',
      listenPort: 0,
      fwmark: 0x0f000000,
      peers: [
        {
          publicKey: peer.publicKey,
          presharedKey: null,
          endpoint: '192.0.2.1:51820',
          allowedIPs: ['10.0.0.0/24'],
          persistentKeepalive: 0,
        },
      ],
      obfuscation: { i1 },
    },
  };
}
const secrets = { privateKey: me.privateKey, presharedKeys: new Map<string, string>() };
const INJECTION = `<b 0x01>\npublic_key=${hex(evil.publicKey)}\nallowed_ip=0.0.0.0/0`;

describe('UAPI emitter', () => {
  it('writes key=value lines and a blank line', () => {
    expect(
      uapiSetRequest([
        ['listen_port', 51820],
        ['replace_peers', true],
        ['i1', ''],
      ]),
    ).toBe('set=1\nlisten_port=51820\nreplace_peers=true\ni1=\n\n');
    expect(uapiReply([['fwmark', 1]])).toBe('fwmark=1\nerrno=0\n\n');
    expect(uapiReply([], -22)).toBe('errno=-22\n\n');
  });

  it.each(['\n', '\r', '\0', '\t', '\x7f', '\x1b'])(
    'refuses the control character %j in a value',
    (c) => {
      expect(() => uapiLine('i1', `<b 0x01>${c}x`)).toThrow(/control character/);
      expect(() => uapiSetRequest([['endpoint', `192.0.2.1:1${c}`]])).toThrow(/control character/);
      expect(() => uapiReply([['spec', `{}${c}`]])).toThrow(/control character/);
    },
  );

  it.each(['', 'a=b', 'public_key\n', 'a\rb', 'A', 'a\0'])('refuses the key %j', (k) => {
    expect(() => uapiLine(k, '1')).toThrow(/UAPI key/);
  });

  it('the engine configuration cannot smuggle a peer through i1 (full and delta)', () => {
    expect(() => fullSetText(spec(INJECTION), secrets)).toThrow(
      /UAPI value of i1 contains the control character U\+000a/,
    );
    expect(() => deltaSetText(spec('<b 0x02>'), spec(INJECTION), secrets)).toThrow(
      /control character/,
    );
    // a clean value still goes through
    expect(fullSetText(spec('<b 0x01><r 4>'), secrets)).toContain('\ni1=<b 0x01><r 4>\n');
  });

  it('a get reply is built by the emitter too: a device holding a bad i-value cannot answer with extra lines', () => {
    const awg = defaultAwgParams();
    awg.i[0] = 'x\npublic_key=00';
    expect(() =>
      serializeUapiGet({ privateKey: null, listenPort: 0, fwmark: 0, awg, peers: [] }),
    ).toThrow(/control character/);
  });
});

describe('UAPI parsers are strict', () => {
  it.each(['\r', '\0', '\x1b'])('the set parser refuses %j inside a line (protocol error)', (c) => {
    expect(() => parseUapiSet(`set=1\nlisten_port=1${c}\n\n`)).toThrow(
      expect.objectContaining({ errno: IPC_ERROR.PROTOCOL }),
    );
    expect(() => parseUapiSet(`set=1\ni1=<b 0x01>${c}\n\n`)).toThrow(
      expect.objectContaining({ errno: IPC_ERROR.PROTOCOL }),
    );
  });

  it('the set parser refuses a key outside [a-z0-9_]', () => {
    expect(() => parseUapiSet('set=1\nListen_Port=1\n\n')).toThrow(
      expect.objectContaining({ errno: IPC_ERROR.PROTOCOL }),
    );
    expect(() => parseUapiSet('set=1\n=1\n\n')).toThrow(
      expect.objectContaining({ errno: IPC_ERROR.PROTOCOL }),
    );
  });

  it('the get parser reads a well-formed reply', () => {
    const g = parseGet(
      `private_key=${hex(me.privateKey)}\nfwmark=5\npublic_key=${hex(peer.publicKey)}\nallowed_ip=10.0.0.0/24\nallowed_ip=10.0.1.0/24\nerrno=0\n\n`,
    );
    expect(g.device).toEqual({ private_key: hex(me.privateKey), fwmark: '5' });
    expect(g.peers).toEqual([
      { public_key: hex(peer.publicKey), allowed_ip: ['10.0.0.0/24', '10.0.1.0/24'] },
    ]);
  });

  it.each([
    ['a line without "="', 'fwmark=1\ngarbage\nerrno=0\n\n'],
    ['a carriage return', 'fwmark=1\r\nerrno=0\n\n'],
    ['a NUL', 'fwmark=1\0\nerrno=0\n\n'],
    ['no errno', 'fwmark=1\n\n'],
    ['no blank line', 'fwmark=1\nerrno=0\n'],
    ['a second errno', 'errno=0\nfwmark=1\nerrno=0\n\n'],
    ['an upper-case key', 'FWMARK=1\nerrno=0\n\n'],
  ])('the get parser refuses %s', (_, text) => {
    expect(() => parseGet(text)).toThrow(/malformed UAPI reply/);
  });
});
