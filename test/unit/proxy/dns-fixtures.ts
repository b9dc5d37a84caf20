/** DNS messages for the proxy DNS tests: example.com A queries and answers. */
export const NAME = Buffer.from([7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0]);
export const QUESTION = Buffer.concat([NAME, Buffer.from([0, 1, 0, 1])]);

/** A query for example.com A with RD set; `edns`: an OPT record with that UDP payload size. */
export function query(id = 0x1234, edns?: number): Buffer {
  const head = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0]);
  const opt = edns
    ? Buffer.from([0, 0, 41, edns >> 8, edns & 0xff, 0, 0, 0, 0, 0, 0])
    : Buffer.alloc(0);
  return Buffer.concat([head, QUESTION, opt]);
}

/** The answer to `query(id)` with `n` A records (name compressed to the question), RA set. */
export function answer(id: number, n: number, question = QUESTION): Buffer {
  const head = Buffer.from([id >> 8, id & 0xff, 0x81, 0x80, 0, 1, n >> 8, n & 0xff, 0, 0, 0, 0]);
  const rrs = Array.from({ length: n }, (_, i) =>
    Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, i >> 8, i & 0xff]),
  );
  return Buffer.concat([head, question, ...rrs]);
}
