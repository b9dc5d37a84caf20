/** Public surface of the embedded WireGuard / AmneziaWG data plane. */
export {
  Engine,
  type EngineIo,
  type EngineOptions,
  type EngineTun,
  createEngine,
  nativeEngineIo,
} from './engine.js';
export { Device } from './device/device.js';
export type { DeviceEvents, DeviceOptions, DeviceState } from './device/device.js';
export type { DeviceSnapshot, PeerStatus, PeerSummary } from './device/status.js';
export type { DeviceConfig, PeerConfig } from './device/config.js';
export { type Clock, systemClock } from './clock.js';
export { type Resolver, dnsResolver } from './device/resolver.js';
export type { TunDevice } from './tun/tun.js';
export { type Bind, type Endpoint, formatEndpoint, splitHostPort } from './conn/bind.js';
export { UdpBind } from './conn/udp.js';
export {
  IPC_ERROR,
  UapiError,
  type UapiFlavor,
  parseUapiSet,
  serializeUapiGet,
} from './device/uapi.js';
export { SOCKET_DIRECTORY, type UapiServer, listenUapi, socketPath } from './ipc/server.js';
export { type AwgParams, defaultAwgParams, validateAwgParams } from './awg/params.js';
export { type UintRange, formatRange, parseRange, range } from './awg/range.js';
export { type RandomSource, cryptoRandom } from './awg/random.js';
export {
  generateKeyPair,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
} from './crypto/keys.js';
export { generatePrivateKey, publicKey } from './crypto/x25519.js';
