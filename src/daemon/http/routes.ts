/**
 * The HTTP API's routes (docs/api.md): each names the RPC whose authorisation it has
 * (authz.ts), and answers with the same documents the CLI prints with `--json`.
 */
import { EVENT_ROUTES } from './events.js';
import type { Route } from './server.js';

export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/api/status',
    rpc: 'Status',
    handle: ({ core }) => core.status(),
  },
  ...EVENT_ROUTES,
];
