/**
 * Names PF rules of ours share: the anchor root and the macro of a tunnel link. Pure; kept
 * apart from pf-render.ts (which re-exports them) so the rule renderers it imports
 * (pf-shaping.ts) can use them without an import circle.
 */
export const ANCHOR_ROOT = 'com.awg';

/** Macro name for a link: PF macros are letters, digits and underscores. */
export function linkMacro(link: string): string {
  return link.replace(/[^A-Za-z0-9_]/g, '_');
}
