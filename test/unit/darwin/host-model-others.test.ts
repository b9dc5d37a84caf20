/**
 * Objects that belong to others on the macOS host model (e2e-apply "foreign objects stay
 * byte-identical"): another program's PF anchor declared in /etc/pf.conf keeps its place and
 * its rules through apply and down; one inserted into the main ruleset at run time is dropped
 * by awg's reload of the main ruleset — a known gap (docs/platform-macos.md), which apply
 * names in a warning; an existing -E reference is never released.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_PF_CONF, MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';
import { macConfig, Rig, WEB } from '../../helpers/macos-host/scenario.js';

const THEIRS = ['block drop out quick proto tcp from any to 203.0.113.0/24 port 25'];

describe("macOS host model: others' PF objects", () => {
  const rigs: Rig[] = [];
  afterEach(() => {
    for (const r of rigs.splice(0)) r.cleanup();
  });

  it('an anchor another program declared in /etc/pf.conf keeps its place and rules; its -E reference is never released', async () => {
    const h = MacHost.laptop();
    h.pfConf = `${DEFAULT_PF_CONF}anchor "org.example.fw"\n`;
    h.pfctlReload();
    h.pf.anchors.set('org.example.fw', [...THEIRS]);
    h.pf.refs.set('9084387343160548126', 4077);
    h.pf.enabled = true;
    const r = new Rig(macConfig(), h);
    rigs.push(r);
    const prior = h.snapshot();
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.pf.main).toContain('anchor "org.example.fw" all');
    expect(h.pf.anchors.get('org.example.fw')).toEqual(THEIRS);
    expect(
      r.events.filter((e) => e.type === 'warning' && /drops anchors/.test(JSON.stringify(e))),
    ).toEqual([]);
    expect(pfVerdict(h, WEB)).toBe('block');
    expect((await r.down()).errors).toEqual([]);
    expect(h.snapshot()).toEqual(prior);
    expect(r.mutationLines().filter((l) => /org\.example|9084387343160548126/.test(l))).toEqual([]);
  });

  it('an anchor inserted into the main ruleset at run time is dropped by our reload (known gap): apply warns, naming it', async () => {
    const h = MacHost.laptop();
    h.pf.main.push('anchor "org.example.runtime" all');
    h.pf.anchors.set('org.example.runtime', [...THEIRS]);
    const r = new Rig(macConfig(), h);
    rigs.push(r);
    expect((await r.apply()).ctx.outcome).toBe('converged');
    const warned = r.events.filter((e) => e.type === 'warning').map((e) => JSON.stringify(e));
    expect(warned.some((w) => w.includes('org.example.runtime'))).toBe(true);
    expect(h.pf.main).not.toContain('anchor "org.example.runtime" all');
    // its rules stay loaded in the anchor; only the main ruleset's reference to it is gone
    expect(h.pf.anchors.get('org.example.runtime')).toEqual(THEIRS);
    await r.down();
    expect(h.pf.main).not.toContain('anchor "org.example.runtime" all');
  });
});
