/**
 * `awg import --key-file` keeps secrets out of the YAML, including the ones people leave in
 * comments: a commented-out PrivateKey/PresharedKey, an old key after the current one, a key
 * inside a hook that is not imported. Public keys stay (they are no secret).
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { importWgQuick } from '../../../src/config/import/index.js';
import { Config } from '../../../src/config/schema.js';

const CURRENT = '4LkIih5+8ebSzBMpY5v86lwbfnUmwVyyIozdhElRREQ=';
const OLD = '8EFZIKSJs74if2on9ZdsNyBdnB2dGeOlXJd9cw/HvEc=';
const OLD2 = 'aGApOkWY8Cj4y6HDAhxipwUwjEEfwO0WB68dU43nSG8=';
const OLD3 = 'yEaJ4Y8KzURX4BS13vLLIG1n9YrWbrfoXeG+MHDoeUE=';
const PSK = 'AAyFKVElO6HHcXnigmhVDDyA3QbqZTM7+1j4fe33BX8=';
const OLD_PSK = '6FoIDlO442wizZ3zwyw/jsS731KHYPl/bMLDSSB49Xw=';
const TAIL = 'oCcM8pQfKnY+iCrvJU2HjmKy4+vHvxu6suzSGzEa92U=';
const PEER_PUB = 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=';
const OLD_PUB = '+PAssLPGFWIc7Cpnkw44w/1usi0aHnsqv+0QKw/96ng=';

const CONF = [
  '# laptop config',
  '[Interface]',
  `# PrivateKey = ${OLD}`,
  `#PrivateKey=${OLD2} (before the reinstall)`,
  `PrivateKey = ${CURRENT} # rotated; was ${OLD3}`,
  '# PrivateKey = not-even-a-key',
  'Address = 10.9.0.2/32',
  `PostUp = wg set %i private-key <(echo ${OLD})`,
  '',
  '[Peer]',
  `# PublicKey = ${OLD_PUB} (the old server)`,
  `PublicKey = ${PEER_PUB}`,
  `# presharedkey = ${OLD_PSK}`,
  `PresharedKey = ${PSK}`,
  'AllowedIPs = 10.9.0.0/24',
  `# spare: ${TAIL}`,
  '',
].join('\n');

describe('awg import: no key material from comments in the YAML', () => {
  for (const keyMode of ['file', 'inline'] as const)
    it(`keyMode ${keyMode}: commented-out private and preshared keys are left out; public keys and the rest of the comments stay`, () => {
      const r = importWgQuick(CONF, { file: 'laptop.conf', keyMode });
      expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
      expect(Config.safeParse(YAML.parse(r.yaml)).success).toBe(true);
      for (const k of [OLD, OLD2, OLD3, OLD_PSK, TAIL, 'not-even-a-key'])
        expect(r.yaml, k).not.toContain(k);
      if (keyMode === 'file') {
        expect(r.yaml).not.toContain(CURRENT);
        expect(r.yaml).not.toContain(PSK);
        expect(r.secretFiles.map((f) => f.content)).toEqual([`${CURRENT}\n`, `${PSK}\n`]);
      }
      // what is not a secret stays
      expect(r.yaml).toContain(`PublicKey = ${OLD_PUB} (the old server)`);
      expect(r.yaml).toContain('laptop config');
      expect(r.yaml).toContain('(before the reinstall)');
      expect(r.yaml).toContain('rotated; was');
      expect(r.yaml).toContain('not imported: PostUp = wg set %i private-key <(echo');
      expect(r.yaml).toContain('spare:');
    });
});
