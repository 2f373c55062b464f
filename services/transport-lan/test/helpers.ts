import net from 'node:net';
import type { LinkDriver, LinkEvent } from '@lattice/multiplexer';
import type { LanDriverEvent, LanLinkDriver } from '../src/index.js';

/**
 * Resolves once `condition()` holds, re-checking after every event of the drivers (links and
 * diagnostics), so nothing polls on a timer.
 */
export function untilEvent(
  drivers: readonly LinkDriver[],
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const stops: (() => void)[] = [];
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      for (const s of stops) s();
      if (error === undefined) resolve();
      else reject(error);
    };
    const check = (): void => {
      if (condition()) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
    for (const d of drivers) {
      stops.push(d.listen(check));
      if ('onDiagnostic' in d) stops.push((d as LanLinkDriver).onDiagnostic(check));
    }
    check();
  });
}

/** Records a driver's link events and diagnostics. */
export function recordDriver(driver: LanLinkDriver): {
  readonly events: LinkEvent[];
  readonly diagnostics: LanDriverEvent[];
  stop(): void;
} {
  const events: LinkEvent[] = [];
  const diagnostics: LanDriverEvent[] = [];
  // A frame's data is valid only during its event (the link contract): keep a copy.
  const a = driver.listen((e) =>
    events.push(e.type === 'frame' ? { ...e, data: new Uint8Array(e.data) } : e),
  );
  const b = driver.onDiagnostic((e) => diagnostics.push(e));
  return {
    events,
    diagnostics,
    stop: () => {
      a();
      b();
    },
  };
}

/**
 * A TCP proxy on 127.0.0.1 in front of a port: `cut()` resets every connection through it (a
 * cable pulled), `freeze()` stops forwarding while keeping the sockets open (a peer that stops
 * answering), and `captured` holds every byte that went through (for the TLS test).
 */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  readonly captured: Buffer[] = [];
  #frozen = false;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (inbound) => proxy.#pipe(inbound, targetHost, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  cut(): void {
    for (const [a, b] of this.#pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  freeze(): void {
    this.#frozen = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #pipe(inbound: net.Socket, host: string, port: number): void {
    const outbound = net.connect({ host, port });
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    const pair: [net.Socket, net.Socket] = [inbound, outbound];
    this.#pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (this.#frozen) return;
        this.captured.push(chunk);
        to.write(chunk);
      });
      // A frozen path passes nothing on, not even a close: the other end hears silence.
      from.on('end', () => {
        if (!this.#frozen) to.end();
      });
      from.on('error', () => {
        if (!this.#frozen) to.destroy();
      });
      from.on('close', () => {
        if (!this.#frozen) {
          to.destroy();
          this.#pairs.delete(pair);
        }
      });
    };
    forward(inbound, outbound);
    forward(outbound, inbound);
  }
}

/** A raw TCP client, for speaking bad bytes to a driver. */
export async function rawClient(
  port: number,
  host = '127.0.0.1',
): Promise<{
  readonly socket: net.Socket;
  readonly received: Buffer[];
  readonly closed: Promise<void>;
}> {
  const socket = net.connect({ port, host });
  const received: Buffer[] = [];
  socket.on('data', (c: Buffer) => received.push(c));
  socket.on('error', () => {
    // A reset by the driver is what several tests expect; `closed` reports the end either way.
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received, closed };
}

export { selfSignedPair } from '@lattice/testing';
