/**
 * GET /api/observation: the observation record of this host, exactly the file `awg status
 * --observed-out` writes (pipeline/observation.ts), for `awg diff --observed` elsewhere. The
 * daemon makes it between runs; the Observation RPC's authorisation (the socket group may
 * read it: no secrets, fingerprints only).
 */
import { ObservationDocument } from '../../pipeline/observation.js';
import type { Route } from './server.js';

export const OBSERVATION_ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/api/observation',
    rpc: 'Observation',
    summary:
      'the observation record of this host for `awg diff --observed` elsewhere (`awg status --observed-out`)',
    response: ObservationDocument,
    handle: ({ core }) => core.observation(),
  },
];
