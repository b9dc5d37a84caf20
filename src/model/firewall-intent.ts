/** @deprecated the Linux pipeline uses resources/firewall/policy.ts FirewallPolicy; kept for the darwin PF renderer until it moves to FirewallPolicy. */
/** What the firewall must achieve, derived from the config (pure data, no nft syntax). */
export interface AppRoute {
  target: string;
  /** path as nft resolves it, relative to /sys/fs/cgroup (e.g. `unified/awg/work`) */
  cgroupPath: string;
  /** depth below the cgroup v2 root, for `socket cgroupv2 level N` */
  level: number;
  mark: number | undefined;
  action: 'tunnel' | 'direct' | 'block';
}

export interface FirewallIntent {
  table: string;
  mask: number;
  bypassMark: number;
  killSwitch: { enabled: boolean; allowLan: boolean };
  ipv6: 'tunnel' | 'block' | 'allow';
  defaultTarget: string;
  dnsLeakProtection: boolean;
  perAppDns: boolean;
  tunnels: { name: string; type: string; link: string | undefined; mark: number; dns: string[]; endpoints: string[] }[];
  appRoutes: AppRoute[];
}
