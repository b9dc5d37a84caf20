/** Generated artefacts: JSON Schemas from the zod model (one source of truth). */
import { z } from 'zod';
import { Config } from '../src/config/schema.js';
import { PlanDocument } from '../src/model/plan-document.js';

function toSchema(schema: z.ZodType, io: 'input' | 'output'): string {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
  return JSON.stringify(json, null, 2) + '\n';
}

/** file name (under schema/) → content */
export function generatedSchemas(): Record<string, string> {
  return {
    'config.schema.json': toSchema(Config, 'input'),
    'plan.schema.json': toSchema(PlanDocument, 'output'),
  };
}
