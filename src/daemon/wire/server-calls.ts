/**
 * How the API's handlers meet gRPC on the server: a unary handler as an async function, the
 * life of a server-streaming call (Watch, Exec), and a failure as its gRPC status with the
 * AwgError in the `awg-error-bin` trailer.
 */
import * as grpc from '@grpc/grpc-js';
import { toAwgError } from '../../errors.js';
import { ERROR_TRAILER, errorToWire } from './errors.js';

export function serviceError(e: unknown): Partial<grpc.ServiceError> {
  const err = toAwgError(e);
  const w = errorToWire(err);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_TRAILER, Buffer.from(w.trailer, 'utf8'));
  return { code: w.code, details: err.message, metadata };
}

/** a unary handler from an async function: its result, or its error as a status */
export function unary<Req, Res>(
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let p: Promise<Res>;
    try {
      p = fn(call.request, call);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (r) => callback(null, r),
      (e: unknown) => callback(serviceError(e)),
    );
  };
}

/**
 * The life of a server-streaming call (Watch, Exec): it ends once, whichever comes first (the
 * client cancels or goes away, the handler fails, the daemon stops), and then releases what
 * it holds. While it holds something the daemon's stop reaches it through `streams`.
 */
export interface StreamCall {
  readonly done: boolean;
  /** keep `release` until the call ends; false (and released at once) when it already has */
  hold(release: () => void): boolean;
  /** end the call with this status, unless it already ended */
  failWith(status: Partial<grpc.ServiceError>): void;
  /** end the call with this error (an AwgError: its code and trailer), unless it already ended */
  fail(e: unknown): void;
  /** the call has ended: release, without a word to the client */
  finish(): void;
}

export function streamCall(
  call: grpc.ServerWritableStream<unknown, unknown>,
  streams: Set<() => void>,
  onDaemonStop: (s: StreamCall) => void,
): StreamCall {
  let done = false;
  let release = () => {};
  const stop = () => onDaemonStop(s);
  const s: StreamCall = {
    get done() {
      return done;
    },
    hold(r) {
      if (done) {
        r();
        return false;
      }
      release = r;
      streams.add(stop);
      return true;
    },
    failWith(status) {
      if (done) return;
      s.finish();
      call.emit('error', status);
    },
    fail: (e) => s.failWith(serviceError(e)),
    finish() {
      if (done) return;
      done = true;
      release();
      streams.delete(stop);
    },
  };
  call.on('cancelled', s.finish);
  call.on('close', s.finish);
  call.on('error', s.finish);
  return s;
}
