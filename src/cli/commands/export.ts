/**
 * `awg export -f config.yaml [--tunnel NAME] [--format conf|vpn] [-o FILE]`: one WireGuard /
 * AmneziaWG tunnel of a config as a wg-quick file (`conf`, what `awg import` reads back) or
 * as an AmneziaVPN `vpn://` key (`vpn`, what the AmneziaVPN apps import). The output holds
 * the tunnel's private key: written with mode 600, never over an existing file.
 */
import { writeFile } from 'node:fs/promises';
import { toAwgError } from '../../errors.js';
import { printError, printIssues, type Io } from '../output.js';

export interface ExportOptions {
  file: string;
  tunnel?: string;
  format?: 'conf' | 'vpn';
  output?: string;
}

/** exit 0 exported, 1 invalid config or a tunnel that cannot be exported */
export async function exportCommand(io: Io, o: ExportOptions): Promise<number> {
  try {
    const [{ loadConfigFile, hasErrors }, { isWgLike }, secrets, { resolveAgeSecrets }] =
      await Promise.all([
        import('../../config/load.js'),
        import('../../config/schema.js'),
        import('../../config/secrets.js'),
        import('../../config/age.js'),
      ]);
    const l = await loadConfigFile(o.file);
    if (!l.config || hasErrors(l.issues)) {
      printIssues(io, l.issues);
      io.err(`${o.file}: invalid\n`);
      return 1;
    }
    const wg = Object.entries(l.config.tunnels).filter(([, t]) => isWgLike(t));
    const pick = o.tunnel ?? (wg.length === 1 ? wg[0]![0] : undefined);
    if (pick === undefined) {
      io.err(
        `${o.file}: ${wg.length === 0 ? 'no WireGuard or AmneziaWG tunnel to export' : `several tunnels (${wg.map(([n]) => n).join(', ')}): name one with --tunnel`}\n`,
      );
      return 1;
    }
    const t = l.config.tunnels[pick];
    if (t === undefined || !isWgLike(t)) {
      io.err(
        `${o.file}: ${t === undefined ? `no tunnel "${pick}"` : `tunnel "${pick}" is ${t.type}, not WireGuard or AmneziaWG`}\n`,
      );
      return 1;
    }
    const age = await resolveAgeSecrets(l.config, o.file, l.positions, process.env);
    const ctx = { configFile: o.file, env: process.env, age };
    const resolve = (s: Parameters<typeof secrets.readSecret>[0]) => secrets.readSecret(s, ctx);
    let text: string;
    let what: string;
    if (o.format === 'vpn') {
      const { exportVpnKey, VpnExportError } = await import('../../config/export-vpn.js');
      try {
        const x = exportVpnKey(pick, t, resolve);
        text = x.key + '\n';
        what = `vpn:// key, container ${x.container}${x.protocolVersion ? ` (AmneziaWG ${x.protocolVersion})` : ''}`;
      } catch (e) {
        if (!(e instanceof VpnExportError)) throw e;
        io.err(`${o.file}: ${e.message}\n`);
        return 1;
      }
    } else {
      const { exportWgQuick } = await import('../../config/export.js');
      text = exportWgQuick(pick, t, resolve);
      what = 'wg-quick file';
    }
    if (o.output) {
      await writeFile(o.output, text, { mode: 0o600, flag: 'wx' });
      io.err(`wrote ${o.output} (tunnel ${pick}, ${what}; mode 600: it holds the private key)\n`);
    } else io.out(text);
    return 0;
  } catch (e) {
    const err = toAwgError(e, 'invalid-config');
    printError(io, err);
    return err.exitCode;
  }
}
