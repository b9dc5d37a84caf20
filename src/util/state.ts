/**
 * Durable state between runs (saved originals of sysctls and DNS, what we last applied).
 * One JSON file per key under the state directory, written atomically (tmp + rename), so
 * several instances in different network namespaces never collide when given different
 * directories (`--state-dir` / AWG_STATE_DIR).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/awg';

export interface StateStore {
  readonly dir: string;
  get<T>(key: string): T | undefined;
  set<T>(key: string, value: T): void;
  delete(key: string): void;
  keys(): string[];
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/;

export class FileStateStore implements StateStore {
  constructor(readonly dir: string) {}
  private path(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`invalid state key ${key}`);
    return join(this.dir, `${key}.json`);
  }
  get<T>(key: string): T | undefined {
    try {
      return JSON.parse(readFileSync(this.path(key), 'utf8')) as T;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  set<T>(key: string, value: T): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const p = this.path(key);
    const tmp = `${p}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, p);
  }
  delete(key: string): void {
    rmSync(this.path(key), { force: true });
  }
  keys(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
  }
}

export class MemoryStateStore implements StateStore {
  readonly dir = ':memory:';
  private readonly data = new Map<string, string>();
  get<T>(key: string): T | undefined {
    const v = this.data.get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }
  set<T>(key: string, value: T): void {
    this.data.set(key, JSON.stringify(value));
  }
  delete(key: string): void {
    this.data.delete(key);
  }
  keys(): string[] {
    return [...this.data.keys()];
  }
}
