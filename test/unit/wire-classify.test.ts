import { describe, expect, it } from 'vitest';
import { isTransportTrain } from '../helpers/wire-classify.js';

/** a transport message: type 4, receiver, counter, then `body` bytes (a multiple of 16) */
function msg(receiver: number, counter: number, body: number): Buffer {
  const b = Buffer.alloc(16 + body, 0xab);
  b.writeUInt32LE(4, 0);
  b.writeUInt32LE(receiver, 4);
  b.writeBigUInt64LE(BigInt(counter), 8);
  return b;
}
const train = (sizes: number[], receiver = 7, first = 100) =>
  Buffer.concat(sizes.map((n, i) => msg(receiver, first + i, n - 16)));

describe("the leak tests' WireGuard classifier", () => {
  it('takes single transport messages of one frame, and refuses other shapes', () => {
    expect(isTransportTrain(msg(1, 0, 16))).toBe(true);
    expect(isTransportTrain(msg(1, 0, 1456))).toBe(true);
    expect(isTransportTrain(msg(1, 0, 17))).toBe(false);
    expect(isTransportTrain(Buffer.alloc(48))).toBe(false);
  });

  it('takes a UDP GSO train of equal messages with a shorter last one', () => {
    expect(isTransportTrain(train([1440, 1440, 1440, 128]))).toBe(true);
    expect(isTransportTrain(train(Array(40).fill(1440)))).toBe(true);
    expect(
      isTransportTrain(train([128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128])),
    ).toBe(true);
  });

  it('refuses a large frame that is not such a train', () => {
    // same sizes, but a foreign receiver, a counter gap, a cleartext tail, a longer last segment
    const foreign = train([1440, 1440]);
    foreign.writeUInt32LE(8, 1440 + 4);
    expect(isTransportTrain(foreign)).toBe(false);
    expect(isTransportTrain(Buffer.concat([msg(7, 1, 1424), msg(7, 3, 1424)]))).toBe(false);
    expect(isTransportTrain(Buffer.concat([msg(7, 1, 1424), Buffer.alloc(1440, 0x41)]))).toBe(
      false,
    );
    expect(isTransportTrain(Buffer.concat([msg(7, 1, 1424), msg(7, 2, 1424 + 32)]))).toBe(false);
  });
});
