import { describe, expect, it } from 'vitest';
import { parseIni, splitList } from '../../../src/config/ini.js';

describe('parseIni', () => {
  it('locates keys and values, case-insensitively, across CRLF and a BOM', () => {
    const { doc, issues } = parseIni(
      '\uFEFF[INTERFACE]\r\n  PrivateKey\t=  abc= \r\n[peer]\r\nEndPoint=h:1\r\n',
      'a.conf',
    );
    expect(issues).toEqual([]);
    expect(doc.sections.map((s) => [s.kind, s.header, s.line, s.col])).toEqual([
      ['interface', '[INTERFACE]', 1, 1],
      ['peer', '[peer]', 3, 1],
    ]);
    const [pk] = doc.sections[0]!.entries;
    expect(pk).toMatchObject({
      key: 'PrivateKey',
      lower: 'privatekey',
      value: 'abc=',
      line: 2,
      col: 3,
      valueCol: 17,
    });
    expect(doc.sections[1]!.entries[0]).toMatchObject({
      lower: 'endpoint',
      value: 'h:1',
      line: 4,
      col: 1,
      valueCol: 10,
    });
  });

  it('removes all whitespace except in I1–I5 and hook values, which are only trimmed', () => {
    const { doc } = parseIni(
      '[Interface]\nAllowed IPs = 10.0.0.0 /8\nI1 =  <b 0xff>  <r 4>  \nPostUp = ip  rule add\nH1 = 5 - 10\n',
      'a.conf',
    );
    const e = doc.sections[0]!.entries;
    expect(e.map((x) => [x.lower, x.value])).toEqual([
      ['allowedips', '10.0.0.0/8'],
      ['i1', '<b 0xff>  <r 4>'],
      ['postup', 'ip  rule add'],
      ['h1', '5-10'],
    ]);
  });

  it('keeps comments: lines above an entry or section, and the trailing comment', () => {
    const { doc } = parseIni(
      '# file header\n\n# iface\n[Interface] # side\n# the key\nMTU = 1400 # small\n# end\n',
      'a.conf',
    );
    const s = doc.sections[0]!;
    expect(s.comments).toEqual([' file header', ' iface']);
    expect(s.trailing).toBe(' side');
    expect(s.entries[0]).toMatchObject({
      comments: [' the key'],
      trailing: ' small',
      value: '1400',
    });
    expect(doc.tailComments).toEqual([' end']);
  });

  it('reports syntax problems with their position and keeps reading', () => {
    const { doc, issues } = parseIni(
      'Stray = 1\n[Interface]\n   garbage\n = 3\n[Other]\nX = 1\n[Peer]\nPublicKey = k\n',
      'b.conf',
    );
    expect(issues.map((i) => [i.line, i.col, i.message.split(':')[0]])).toEqual([
      [1, 1, 'key Stray outside a section'],
      [3, 4, 'line not understood'],
      [4, 2, 'missing key name before "="'],
      [5, 1, 'unknown section [Other]'],
    ]);
    expect(issues.every((i) => i.file === 'b.conf' && i.severity === 'error')).toBe(true);
    expect(doc.sections.map((s) => s.kind)).toEqual(['interface', 'peer']);
  });

  it('splits lists with a column per item', () => {
    const { doc } = parseIni(
      '[Peer]\nAllowedIPs = 10.0.0.0/8 ,  fd00::/8,,\t192.168.0.1\n',
      'a.conf',
    );
    expect(splitList(doc.sections[0]!.entries[0]!)).toEqual([
      { value: '10.0.0.0/8', col: 14 },
      { value: 'fd00::/8', col: 28 },
      { value: '192.168.0.1', col: 39 },
    ]);
  });
});
