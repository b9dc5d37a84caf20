/**
 * The data plane reuses its packet memory (the TUN's read slab, the send and receive slabs,
 * the native bind's receive block) instead of allocating per packet; AWG_BUFFER_REUSE=0
 * switches back to a buffer per packet everywhere, for diagnosis.
 */
export function reuseBuffers(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AWG_BUFFER_REUSE !== '0';
}
