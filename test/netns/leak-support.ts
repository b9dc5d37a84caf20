/**
 * Shared by the leak tests (issue #6, step 5), and by the crash and soak tests that use their
 * topology; one import for the pieces, each in a file of its concern:
 *
 *   leak-topology.ts  the four-namespace topology, its counting server, the peer's and the
 *                     client's configs
 *   leak-cli.ts       the awg CLI from dist/ (`bin/awg.js`, the shipped product) inside a
 *                     namespace, the daemon and its events, waits
 *   leak-apps.ts      traffic generators run as apps
 *   leak-capture.ts   tcpdump on the client's underlay and the pcap classifier
 */
export * from './leak-topology.js';
export * from './leak-cli.js';
export * from './leak-apps.js';
export * from './leak-capture.js';
