/** Host-dependent inputs to the pure pipeline (facts probed before planning). */
import type { PrepareOptions } from '../app.js';
import { probeHostFacts } from '../../resources/facts.js';

export const hostFacts: NonNullable<PrepareOptions['probeFacts']> = probeHostFacts;
