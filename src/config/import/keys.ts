/**
 * The INI keys `awg import` knows: which section each belongs in, which AmneziaWG keys map to
 * which obfuscation fields, which keys repeat, and the wg-quick keys it reads but does not
 * carry over (with the reason it reports).
 */
export const AWG_SIMPLE = ['jc', 'jmin', 'jmax', 's1', 's2', 's3', 's4'] as const;
export const AWG_H = ['h1', 'h2', 'h3', 'h4'] as const;
export const AWG_I = ['i1', 'i2', 'i3', 'i4', 'i5'] as const;
/** AWG 3.x ranges (awg(8) `u16_range_from_string`) and switches, INI key → model field. */
export const AWG3_RANGES = {
  contentpaddingaddition: 'contentPaddingAddition',
  rekeyaftertime: 'rekeyAfterTime',
  rekeytimeout: 'rekeyTimeout',
  rejectaftertime: 'rejectAfterTime',
  keepalivetimeout: 'keepaliveTimeout',
  maxhandshakeattempts: 'maxHandshakeAttempts',
} as const;
export const AWG3_BOOLS = {
  randomtrailers: 'randomTrailers',
  disablecookies: 'disableCookies',
} as const;
export const AWG3_FIELDS = [
  'headerProtectionKey',
  ...Object.values(AWG3_RANGES),
  ...Object.values(AWG3_BOOLS),
] as const;
const AWG_KEYS = new Set<string>([
  ...AWG_SIMPLE,
  ...AWG_H,
  ...AWG_I,
  'headerprotectionkey',
  ...Object.keys(AWG3_RANGES),
  ...Object.keys(AWG3_BOOLS),
]);

/** AmneziaWG keys the model cannot hold, with what they are. */
export const UNSUPPORTED_INTERFACE: Record<string, string> = {
  j1: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  j2: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  j3: 'AmneziaWG 1.5 controlled junk, removed in 2.0',
  itime: 'AmneziaWG 1.5 I-packet interval, removed in 2.0',
};
export const UNSUPPORTED_PEER: Record<string, string> = {
  advancedsecurity: 'an AmneziaWG kernel-module flag',
};

const HOOKS =
  'awg sets up routes, DNS and firewall itself and runs no hooks; run such commands another way if still needed';

/** wg-quick keys that awg replaces with its own routing and hooks. */
export const NOT_IMPORTED: Record<string, string> = {
  fwmark: 'awg marks tunnel traffic itself, inside routing.fwmarkMask',
  table:
    'awg allocates a routing table per tunnel from routing.tableBase; per-app rules decide what is routed',
  preup: HOOKS,
  postup: HOOKS,
  predown: HOOKS,
  postdown: HOOKS,
  saveconfig: 'awg never rewrites its config',
};

export const INTERFACE_KEYS = new Set([
  'privatekey',
  'address',
  'dns',
  'mtu',
  'listenport',
  ...AWG_KEYS,
  ...Object.keys(NOT_IMPORTED),
]);
export const PEER_KEYS = new Set([
  'publickey',
  'presharedkey',
  'allowedips',
  'endpoint',
  'persistentkeepalive',
]);
export const REPEATABLE = new Set([
  'address',
  'dns',
  'allowedips',
  'preup',
  'postup',
  'predown',
  'postdown',
]);
