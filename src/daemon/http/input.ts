/**
 * A request's JSON body or query, checked against the route's zod schema: an `invalid-config`
 * error (HTTP 400) whose message names every field that is wrong, each also as an issue
 * (`path`: the field, `file`: where it came from). Pure.
 */
import type * as z from 'zod';
import { AwgError, type Issue } from '../../errors.js';

export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'request body' | 'query',
): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues: Issue[] = r.error.issues.map((i) => ({
    file: where,
    path: i.path.map(String).join('.'),
    message: i.message,
    severity: 'error',
  }));
  const what = (i: Issue) => (i.path ? `${i.path}: ${i.message}` : i.message);
  throw new AwgError('invalid-config', `${where}: ${issues.map(what).join('; ')}`, {
    issues,
  });
}
