/**
 * LAN discovery over mDNS / DNS-SD: announces `_lattice._tcp` with the driver's instance id and
 * port in TXT, browses for the same service, and reports peers found and peers lost.
 *
 * @remarks
 * Built on `bonjour-service` (pure JS over `multicast-dns`, typed, maintained; no native
 * Avahi/Bonjour daemon needed). A browser reports a service once, and bonjour-service does not
 * refresh `lastSeen` for services it knows, so every `refreshMs` a fresh browser is started: each
 * answer counts as "seen". A peer not seen for `forgetAfterMs`, or that sent an mDNS goodbye, is
 * reported lost. Our own announcement (same instance id) is ignored.
 */
import { Bonjour, type Browser, type Service } from 'bonjour-service';
import type { LanLinkDriver } from './lan-link-driver.js';

/** DNS-SD service type (`_lattice._tcp`). */
export const LATTICE_SERVICE_TYPE = 'lattice';

/** A peer seen on the network. */
export interface DiscoveredPeer {
  readonly instanceId: string;
  /** Address to dial (the address its announcement came from, else its first IPv4). */
  readonly host: string;
  readonly port: number;
}

/** Settings of {@link MdnsDiscovery}. */
export interface MdnsDiscoveryOptions {
  readonly instanceId: string;
  /** The port we listen on, announced in SRV and TXT. */
  readonly port: number;
  /** Re-browse interval (default 2 000 ms). */
  readonly refreshMs?: number;
  /** Forget a peer not seen for this long (default 10 000 ms). */
  readonly forgetAfterMs?: number;
  /** Multicast interface address (multicast-dns `interface`), when the default route is wrong. */
  readonly interface?: string;
  readonly onFound: (peer: DiscoveredPeer) => void;
  readonly onLost: (instanceId: string) => void;
  /** mDNS socket errors (for logs); discovery keeps running. */
  readonly onError?: (error: Error) => void;
}

/** See the module comment. */
export class MdnsDiscovery {
  readonly #options: MdnsDiscoveryOptions;
  readonly #bonjour: Bonjour;
  readonly #seen = new Map<string, { peer: DiscoveredPeer; lastSeen: number }>();
  #browser: Browser | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MdnsDiscoveryOptions) {
    this.#options = options;
    // The options go to multicast-dns as well (`interface`), which bonjour-service's type omits.
    const mdnsOptions = (
      options.interface === undefined ? {} : { interface: options.interface }
    ) as ConstructorParameters<typeof Bonjour>[0];
    this.#bonjour = new Bonjour(mdnsOptions, (error: Error) => options.onError?.(error));
  }

  /** Starts announcing and browsing. */
  start(): void {
    const o = this.#options;
    this.#bonjour.publish({
      name: `lattice-${o.instanceId.slice(0, 12)}`,
      type: LATTICE_SERVICE_TYPE,
      protocol: 'tcp',
      port: o.port,
      txt: { id: o.instanceId, port: String(o.port), v: '1' },
    });
    this.#browse();
    this.#timer = setInterval(() => {
      this.#browse();
      this.#expire();
    }, o.refreshMs ?? 2_000);
    this.#timer.unref();
  }

  /** Peers currently known. */
  get peers(): readonly DiscoveredPeer[] {
    return [...this.#seen.values()].map((s) => s.peer);
  }

  /** Stops: sends goodbyes, closes the mDNS socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#browser?.stop();
    await new Promise<void>((resolve) => this.#bonjour.unpublishAll(() => resolve()));
    await new Promise<void>((resolve) => this.#bonjour.destroy(() => resolve()));
  }

  #browse(): void {
    this.#browser?.stop();
    const browser = this.#bonjour.find({ type: LATTICE_SERVICE_TYPE, protocol: 'tcp' });
    browser.on('up', (s) => this.#onUp(s));
    browser.on('down', (s) => {
      const id = instanceIdOf(s);
      if (id !== undefined && this.#seen.delete(id)) this.#options.onLost(id);
    });
    this.#browser = browser;
  }

  #onUp(service: Service): void {
    const id = instanceIdOf(service);
    if (id === undefined || id === this.#options.instanceId) return;
    const host =
      service.referer?.address ?? service.addresses?.find((a) => !a.includes(':')) ?? service.host;
    const peer: DiscoveredPeer = { instanceId: id, host, port: service.port };
    const known = this.#seen.get(id);
    this.#seen.set(id, { peer, lastSeen: Date.now() });
    if (known === undefined || known.peer.host !== host || known.peer.port !== peer.port)
      this.#options.onFound(peer);
  }

  #expire(): void {
    const limit = Date.now() - (this.#options.forgetAfterMs ?? 10_000);
    for (const [id, s] of this.#seen) {
      if (s.lastSeen < limit) {
        this.#seen.delete(id);
        this.#options.onLost(id);
      }
    }
  }
}

function instanceIdOf(service: Service): string | undefined {
  const txt: unknown = service.txt;
  if (typeof txt !== 'object' || txt === null) return undefined;
  const id = (txt as Record<string, unknown>)['id'];
  return typeof id === 'string' && /^[0-9a-f]{32}$/.test(id) ? id : undefined;
}

/** Settings of {@link discoverPeers}. */
export type DiscoverPeersOptions = Omit<
  MdnsDiscoveryOptions,
  'instanceId' | 'port' | 'onFound' | 'onLost'
> & {
  readonly onFound?: (peer: DiscoveredPeer) => void;
  readonly onLost?: (instanceId: string) => void;
};

/**
 * Announces a listening driver and keeps it connected to the peers found.
 *
 * @remarks Only the side with the smaller instance id dials a discovered peer, so two peers that
 * find each other do not both dial (the HELLO rule would keep one link anyway; this avoids the
 * churn). A lost peer is no longer redialed; its link, if up, stays until it fails.
 * @throws RangeError when the driver does not listen.
 */
export function discoverPeers(
  driver: LanLinkDriver,
  options: DiscoverPeersOptions = {},
): MdnsDiscovery {
  const port = driver.port;
  if (port === undefined) throw new RangeError('discovery needs a listening driver');
  const discovery = new MdnsDiscovery({
    ...options,
    instanceId: driver.instanceId,
    port,
    onFound: (p) => {
      options.onFound?.(p);
      if (driver.instanceId < p.instanceId)
        driver.addPeer({ host: p.host, port: p.port }, 'discovered', p.instanceId);
    },
    onLost: (id) => {
      options.onLost?.(id);
      driver.removePeer(`mdns:${id}`);
    },
  });
  discovery.start();
  return discovery;
}
