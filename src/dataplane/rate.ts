/**
 * Events counted in one-second windows: `add(n, now)` adds n to the window `now` falls in (a
 * window starts at the first event 1 s or more after the last one started) and returns the
 * window's count. What decides "under load": handshake messages (device/receive.ts), datagrams
 * sent (the sender thread, conn/native-udp.ts), messages sealed or opened (the crypto pool).
 */
export class PerSecond {
  private start = -Infinity;
  private count = 0;

  add(n: number, now: number): number {
    if (now - this.start >= 1000) {
      this.start = now;
      this.count = 0;
    }
    return (this.count += n);
  }
}
