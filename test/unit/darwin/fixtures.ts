/**
 * Captured real macOS outputs, copied into the repository (test/fixtures/macos; sources and
 * provenance in its INDEX.md). Tests read nothing outside the repository.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = new URL('../../fixtures/macos/', import.meta.url);
const MARKER = '# ---- verbatim output below this line ----\n';

/** Verbatim output of one fixture, header stripped. */
export function fixture(rel: string): string {
  const text = readFileSync(fileURLToPath(new URL(rel, ROOT)), 'utf8');
  const i = text.indexOf(MARKER);
  if (i < 0) throw new Error(`fixture ${rel} has no marker line`);
  return text.slice(i + MARKER.length);
}

/**
 * Fixtures whose researcher put several outputs in one file under `### title` lines (and
 * `--- stdout ---` / `--- stderr ---` markers): title → text.
 */
export function sections(
  rel: string,
): Map<string, { text: string; stdout: string; stderr: string }> {
  const out = new Map<string, { text: string; stdout: string; stderr: string }>();
  let title: string | undefined;
  let buf: string[] = [];
  const flush = () => {
    if (title === undefined) return;
    const text = buf.join('\n').replace(/\n+$/, '') + '\n';
    const so = /--- stdout ---\n([\s\S]*?)--- stderr ---\n([\s\S]*)$/.exec(text);
    out.set(title, { text, stdout: so ? so[1]! : '', stderr: so ? so[2]! : text });
  };
  for (const l of fixture(rel).split('\n')) {
    if (l.startsWith('### ')) {
      flush();
      title = l.slice(4).trim();
      buf = [];
    } else buf.push(l);
  }
  flush();
  return out;
}

/** Binary fixtures: decimal comma lists or hex byte runs. */
export function bytes(rel: string): Uint8Array {
  const t = fixture(rel).trim();
  const vals = t.includes(',')
    ? t
        .split(/[,\s]+/)
        .filter(Boolean)
        .map((x) => Number(x))
    : t.split(/\s+/).map((x) => Number.parseInt(x, 16));
  return new Uint8Array(vals);
}
