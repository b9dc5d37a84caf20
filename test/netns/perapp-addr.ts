/** The addresses of the per-app topology (perapp-topology.ts draws it). */
export const ADDR = {
  client: '10.200.70.2',
  routerClient: '10.200.70.1',
  peer1: '10.200.71.2',
  routerPeer1: '10.200.71.1',
  peer2: '10.200.72.2',
  routerPeer2: '10.200.72.1',
  server: '10.200.73.2',
  routerServer: '10.200.73.1',
  tun1Peer: '10.200.81.1',
  tun1Client: '10.200.81.2',
  tun2Peer: '10.200.82.1',
  tun2Client: '10.200.82.2',
} as const;

export const WG_PORT = 51820;
