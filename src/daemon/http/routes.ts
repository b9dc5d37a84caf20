/**
 * The HTTP API's routes (docs/api.md): each names the RPC whose authorisation it has
 * (authz.ts), and answers with the same documents the CLI prints with `--json`. Each area
 * keeps its routes in its own file.
 */
import { API_ROUTES } from './api-routes.js';
import { EVENT_ROUTES } from './events.js';
import type { Route } from './server.js';

export const ROUTES: readonly Route[] = [...API_ROUTES, ...EVENT_ROUTES];
