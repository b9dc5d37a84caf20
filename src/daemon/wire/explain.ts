/**
 * Explain on the wire: the request as proto fields, the answer as the JSON of its document
 * (model/explain-document.ts), checked against the schema where it arrives, as Observation's
 * parts are (observation.ts). Pure.
 */
import { AwgError } from '../../errors.js';
import { ExplainDocument } from '../../model/explain-document.js';
import type { ExplainRequest } from '../../procs/explain.js';
import { bad } from './common.js';
import type { ExplainRequest__Output } from './generated/awg/v1/ExplainRequest.js';
import type { ExplainResponse__Output } from './generated/awg/v1/ExplainResponse.js';

export function explainRequestToWire(r: ExplainRequest): ExplainRequest__Output {
  return { pid: r.pid, host: r.host, port: r.port, udp: r.proto === 'udp' };
}

export function explainRequestFromWire(w: ExplainRequest__Output): ExplainRequest {
  if (!w.pid) throw new AwgError('invalid-config', 'Explain: a pid is needed');
  if (!w.host) throw new AwgError('invalid-config', 'Explain: a host is needed');
  if (w.port > 65535) throw new AwgError('invalid-config', `Explain: port ${w.port}`);
  return { pid: w.pid, host: w.host, port: w.port, proto: w.udp ? 'udp' : 'tcp' };
}

export function explainToWire(d: ExplainDocument): ExplainResponse__Output {
  return { documentJson: JSON.stringify(d) };
}

export function explainFromWire(w: ExplainResponse__Output): ExplainDocument {
  let v: unknown;
  try {
    v = JSON.parse(w.documentJson) as unknown;
  } catch {
    throw bad('Explain document_json is not JSON');
  }
  const r = ExplainDocument.safeParse(v);
  if (!r.success) throw bad(`Explain document: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}
