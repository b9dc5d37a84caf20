/**
 * A sing-box source rule-set (JSON): `{"version": 1…4, "rules": [ {…}, … ]}`.
 *
 * A rule-set matches when any of its rules does, and a default rule's destination fields are
 * alternatives (`domain || domain_suffix || domain_keyword || domain_regex || ip_cidr`), so
 * every value of those fields is an entry:
 * - `domain` → `full` (that name only);
 * - `domain_suffix` → `domain` (the name and every name under it: sing-box matches suffixes on
 *   whole labels, `example.com` is not `fooexample.com` — sing's domain matcher, rootLabel);
 *   a value written `.example.com` → `wildcard` (names under it only);
 * - `domain_keyword` → `keyword`; `domain_regex` → `regex`; `ip_cidr` → `address`.
 * A value is a string or an array of strings (sing-box's Listable).
 *
 * Refused, at the member's line and column (they would change what the rule means, and awg
 * routes by destination alone): a logical rule (`type: logical`), `invert: true`, and every
 * field that narrows a rule (`port`, `network`, `process_name`, `source_ip_cidr`, … with a
 * value that is not empty). An unknown field is refused as sing-box refuses it.
 */
import { JsonError, JsonScanner } from './json-scan.js';
import { Emitter } from './reading.js';
import type { ListEntryKind, ListPlace, ListReader, ListSink, ReadOptions } from './types.js';

export const RULE_SET_VERSIONS = [1, 2, 3, 4] as const;

const ENTRY_FIELDS: Record<string, ListEntryKind> = {
  domain: 'full',
  domain_suffix: 'domain',
  domain_keyword: 'keyword',
  domain_regex: 'regex',
  ip_cidr: 'address',
};

/** the fields of a default rule that narrow it, and what they narrow it by */
export const NARROWING: Record<string, string> = {
  query_type: 'the DNS query type',
  network: 'the network (tcp/udp)',
  source_ip_cidr: 'the source address',
  source_port: 'the source port',
  source_port_range: 'the source port',
  port: 'the destination port',
  port_range: 'the destination port',
  process_name: 'the process',
  process_path: 'the process',
  process_path_regex: 'the process',
  package_name: 'the Android package',
  network_type: 'the network type',
  network_is_expensive: 'the network being metered',
  network_is_constrained: 'the network being constrained',
  network_interface_address: 'the interface address',
  default_interface_address: 'the interface address',
  wifi_ssid: 'the Wi-Fi network',
  wifi_bssid: 'the Wi-Fi network',
};

/** why a narrowing field (or `.srs` item) is refused */
export function narrowingMessage(field: string, what: string): string {
  return `${field}: the rule also depends on ${what}; awg routes by destination alone and cannot honour it (the list would match more than it says)`;
}

function detect(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 4096))
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  return /^\s*\{\s*("|\})/.test(head);
}

class RuleSetReader {
  constructor(
    private readonly j: JsonScanner,
    private readonly out: Emitter,
  ) {}

  run(): void {
    const j = this.j;
    j.peek();
    const top = j.place();
    if (j.kind() !== 'object') j.fail('a sing-box rule-set is a JSON object {"version", "rules"}');
    let sawVersion = false;
    j.object(1, (key, at) => {
      if (key === 'version') {
        sawVersion = true;
        this.readVersion(at);
      } else if (key === 'rules') {
        if (j.kind() !== 'array') {
          this.out.error('rules: must be an array of rules', at);
          j.skip(1);
        } else j.array(2, (el) => this.rule(el));
      } else {
        this.out.error(`unknown field ${JSON.stringify(key)} in a rule-set`, at);
        j.skip(1);
      }
    });
    j.end();
    if (!sawVersion) this.out.error('the rule-set has no "version" (sing-box requires it)', top);
  }

  private readVersion(at: ListPlace): void {
    const j = this.j;
    if (j.kind() !== 'number') {
      this.out.error('version: must be a number', at);
      j.skip(1);
      return;
    }
    const v = j.number();
    if (!(RULE_SET_VERSIONS as readonly number[]).includes(v))
      this.out.error(
        `version ${v}: this reader knows rule-set versions ${RULE_SET_VERSIONS.join(', ')}`,
        at,
      );
  }

  private rule(at: ListPlace): void {
    const j = this.j;
    if (j.kind() !== 'object') {
      this.out.error('a rule must be an object', at);
      j.skip(2);
      return;
    }
    let type: { value: string; at: ListPlace } | undefined;
    let logicalKey: ListPlace | undefined;
    j.object(3, (key, kat) => {
      if (this.out.stopped) {
        j.skip(3);
        return;
      }
      const kind = ENTRY_FIELDS[key];
      if (kind) this.values(key, kind, kat);
      else if (key === 'type') {
        if (j.kind() === 'string') type = { value: j.string(), at: kat };
        else {
          this.out.error('type: must be "default" or "logical"', kat);
          j.skip(3);
        }
      } else if (key === 'invert') {
        if (!j.skip(3))
          this.out.error(
            'invert: a rule that matches what it does not name cannot be a list of destinations',
            kat,
          );
      } else if (key === 'mode' || key === 'rules') {
        logicalKey ??= kat;
        j.skip(3);
      } else if (NARROWING[key] !== undefined) {
        if (!j.skip(3)) this.out.error(narrowingMessage(key, NARROWING[key]!), kat);
      } else {
        this.out.error(`unknown field ${JSON.stringify(key)} in a rule`, kat);
        j.skip(3);
      }
    });
    if (type?.value === 'logical')
      this.out.error(
        'a logical rule (and/or of rules) cannot be read as a list of destinations',
        type.at,
      );
    else if (type !== undefined && type.value !== 'default' && type.value !== '')
      this.out.error(`type ${JSON.stringify(type.value)}: must be "default" or "logical"`, type.at);
    else if (logicalKey)
      this.out.error('mode and rules belong to a logical rule (type: logical)', logicalKey);
  }

  /** one destination field: a string or an array of strings */
  private values(key: string, kind: ListEntryKind, at: ListPlace): void {
    const j = this.j;
    const one = (vat: ListPlace) => {
      if (j.kind() !== 'string') {
        this.out.error(`${key}: values must be strings`, vat);
        j.skip(4);
        return;
      }
      const v = j.string();
      if (this.out.stopped) return;
      if (v.length === 0) this.out.error(`${key}: an empty value (sing-box refuses it)`, vat);
      else if (key === 'domain_suffix' && v.startsWith('.'))
        this.out.entry('wildcard', v.slice(1), vat);
      else this.out.entry(kind, v, vat);
    };
    if (j.kind() === 'array') j.array(4, one);
    else one(at);
  }
}

function read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void {
  const out = new Emitter(sink, opts.maxEntries);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  try {
    new RuleSetReader(new JsonScanner(text), out).run();
  } catch (e) {
    if (e instanceof JsonError) out.error(`not valid JSON: ${e.message}`, e.at);
    else
      out.error(
        `internal error while reading the rule-set: ${e instanceof Error ? e.message : String(e)}`,
        { line: 1, col: 1 },
      );
  }
}

export const singBoxReader: ListReader = { format: 'sing-box', detect, read };
