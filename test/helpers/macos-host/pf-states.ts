/**
 * PF's state table for UDP on the model host, as xnu bsd/net/pf.c keeps it (read in the
 * public source, not observed): a state key holds the lan, gwy and ext ends of a flow
 * (lan: the inside end before translation, gwy: the same end after it, ext: the far end) and
 * the states of that key (one per interface, if-bound ones before floating ones). It is
 * found in two trees: outbound packets by (lan = source, ext = destination) — pf_find_state
 * PF_OUT, pf_state_compare_lan_ext —, inbound ones by (ext = source, gwy = destination) — PF_IN,
 * pf_state_compare_ext_gwy. pf_insert_state: a new state whose (lan, ext) key exists joins
 * that key unless a state of the same interface is already there (a collision: the packet
 * is dropped); a new key whose (ext, gwy) exists fails too. DIOCNATLOOK (pf_ioctl.c) looks
 * states up by the same trees whatever their interface, E2BIG when more than one answers.
 * The model holds UDP states only (the TCP path is evaluated statelessly: pf-eval.ts pfPath).
 */
import ipaddr from 'ipaddr.js';

export interface Ep {
  address: string;
  port: number;
}

export interface StateKey {
  family: 4 | 6;
  lan: Ep;
  gwy: Ep;
  ext: Ep;
  states: PfState[];
}

export interface PfState {
  key: StateKey;
  /** the interface it is bound to, `*` when floating */
  kif: string;
  /** the rule's `route-to` interface, applied to every packet the state passes */
  routeTo?: string;
  /** what made it: a filter rule, `nat`, or `rdr pass` */
  by: 'filter' | 'nat' | 'rdr';
}

const canon = (a: string) => ipaddr.parse(a).toNormalizedString();
export const sameEp = (a: Ep, b: Ep) => a.port === b.port && canon(a.address) === canon(b.address);

export class PfStateTable {
  keys: StateKey[] = [];
  /** PF's random start of a nat port search (pf_get_sport's `cut`); tests may fix it */
  pick: (low: number, high: number) => number = (low, high) =>
    low + Math.floor(Math.random() * (high - low + 1));

  clear(): void {
    this.keys = [];
  }

  get size(): number {
    return this.keys.reduce((n, k) => n + k.states.length, 0);
  }

  private keyOf(dir: 'in' | 'out', src: Ep, dst: Ep): StateKey | undefined {
    return this.keys.find((k) =>
      dir === 'out'
        ? sameEp(k.lan, src) && sameEp(k.ext, dst)
        : sameEp(k.ext, src) && sameEp(k.gwy, dst),
    );
  }

  /** pf_find_state: the key by the packet's direction, then a state of this interface or a floating one */
  find(dir: 'in' | 'out', kif: string, src: Ep, dst: Ep): PfState | undefined {
    return this.keyOf(dir, src, dst)?.states.find((s) => s.kif === '*' || s.kif === kif);
  }

  /** pf_insert_state: the new state, or 'collision' (the packet is dropped) */
  insert(k: Omit<StateKey, 'states'>, state: Omit<PfState, 'key'>): PfState | 'collision' {
    const cur = this.keys.find((x) => sameEp(x.lan, k.lan) && sameEp(x.ext, k.ext));
    if (cur) {
      if (cur.states.some((s) => s.kif === state.kif)) return 'collision';
      const s: PfState = { ...state, key: cur };
      // if-bound states are kept before floating ones
      if (state.kif === '*') cur.states.push(s);
      else cur.states.unshift(s);
      return s;
    }
    if (this.keys.some((x) => sameEp(x.ext, k.ext) && sameEp(x.gwy, k.gwy))) return 'collision';
    const key: StateKey = { ...k, states: [] };
    const s: PfState = { ...state, key };
    key.states.push(s);
    this.keys.push(key);
    return s;
  }

  /** pf_get_sport: a port of [low, high] for `naddr` toward `dst` no state's (ext, gwy) holds */
  natPort(dst: Ep, naddr: string, low: number, high: number): number | undefined {
    const free = (port: number) => !this.keyOf('in', dst, { address: naddr, port });
    const cut = this.pick(low, high);
    for (let p = cut; p <= high; p++) if (free(p)) return p;
    for (let p = cut - 1; p >= low; p--) if (free(p)) return p;
    return undefined;
  }

  /**
   * DIOCNATLOOK: PF_OUT looks up (lan = daddr, ext = saddr) and answers the key's gwy;
   * PF_IN looks up (ext = daddr, gwy = saddr) and answers its lan. Throws ENOENT / E2BIG.
   */
  natlook(direction: 'in' | 'out', saddr: Ep, daddr: Ep): Ep {
    const found =
      direction === 'out'
        ? this.keys.filter((k) => sameEp(k.lan, daddr) && sameEp(k.ext, saddr))
        : this.keys.filter((k) => sameEp(k.ext, daddr) && sameEp(k.gwy, saddr));
    const states = found.flatMap((k) => k.states);
    if (states.length > 1) throw Object.assign(new Error('DIOCNATLOOK: E2BIG'), { code: 'E2BIG' });
    if (!found.length) throw Object.assign(new Error('DIOCNATLOOK: ENOENT'), { code: 'ENOENT' });
    return direction === 'out' ? { ...found[0]!.gwy } : { ...found[0]!.lan };
  }
}
