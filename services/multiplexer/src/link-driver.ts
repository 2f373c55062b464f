/**
 * The link contract between a transport and the multiplexer, in process.
 *
 * @remarks
 * A {@link LinkDriver} reports links coming up (with their capabilities) and going down, delivers
 * the frames each link received, and sends frames. Events are synchronous typed callbacks rather
 * than async iterables so that a simulated clock drives drivers and multiplexer deterministically
 * (an async iterator would put a microtask boundary between every frame). Over the bus the same
 * contract is `lattice.v1.LinkUp` / `LinkDown` / `LinkFrame` on `Subjects.linkEvent` /
 * `framesIn` / `framesOut` (see `bus-link-driver.ts`). Every driver passes
 * `runLinkDriverContractTests` from `@lattice/multiplexer/testing`.
 */
import type { v1 } from '@lattice/proto';

/** A link id, unique within its driver. */
export type LinkId = string & { readonly __linkId: true };

/** Brands a string as a {@link LinkId}. */
export function asLinkId(id: string): LinkId {
  return id as LinkId;
}

/** What a link can do (the generated `lattice.v1.LinkCapabilities`, every field present). */
export type LinkCapabilities = {
  readonly [K in Exclude<keyof v1.ILinkCapabilities, '$unknowns'>]-?: NonNullable<
    v1.ILinkCapabilities[K]
  >;
};

/** A link that came up. */
export interface LinkInfo {
  readonly id: LinkId;
  /** `lan`, `usb`, `ble`, `ws`, `loopback`. */
  readonly transport: string;
  readonly capabilities: LinkCapabilities;
  readonly remoteAddress: string;
  /**
   * What the peer behind this link may read and write, when the transport authenticated it as a
   * restricted principal (the gateway's WebSocket endpoint: the app's key). Undefined: a member
   * of the mesh, trusted with everything. The multiplexer hands it on with the peer's events;
   * the sync protocol enforces it.
   */
  readonly permissions?: v1.IPermissions | undefined;
  /**
   * The credential the transport authenticated the remote with, when it did (the gateway's
   * WebSocket endpoint: the app key's name). Such a link is admitted on what the transport
   * checked, without the mesh key (`MultiplexerOptions.meshKey`); undefined: a mesh link.
   */
  readonly principal?: string | undefined;
}

/** What a driver reports, as a discriminated union. */
export type LinkEvent =
  | { readonly type: 'up'; readonly link: LinkInfo }
  | {
      readonly type: 'down';
      readonly linkId: LinkId;
      readonly reasonCode: string;
      readonly reason: string;
    }
  /**
   * A frame received. `data` is valid only during the listener call: the driver may reuse its
   * memory afterwards (the LAN driver assembles frames split across socket reads in one buffer
   * per connection), so a listener that keeps any of its bytes copies them.
   */
  | { readonly type: 'frame'; readonly linkId: LinkId; readonly data: Uint8Array }
  /** The link accepts frames again after {@link LinkDriver.send} refused one. */
  | { readonly type: 'writable'; readonly linkId: LinkId };

/** Listener of a driver's events. */
export type LinkListener = (event: LinkEvent) => void;

/** A source of links; see the module comment. */
export interface LinkDriver {
  /** A name for logs and metrics (`loopback`, `transport-lan`). */
  readonly name: string;
  /**
   * Starts delivering events to `listener`; links already up are reported first.
   * @returns a function that stops delivering.
   */
  listen(listener: LinkListener): () => void;
  /**
   * Sends one frame on a link.
   *
   * @remarks
   * **Frame ownership.** When `send` returns true, the frame's bytes belong to the driver until
   * it has transmitted them, which may be long after `send` returned: a driver may keep the
   * frame instead of copying it (the LAN driver hands frames of 8 KiB or more to its socket as
   * they are). The caller must therefore not change those bytes afterwards, nor let anyone
   * reuse the memory under them; a caller that cannot promise this (its frame is a view into a
   * buffer it does not own, such as a bus message) passes a copy. Re-sending the same unchanged
   * frame is fine. When `send` returns false or throws, the driver kept nothing.
   *
   * The multiplexer honours this by encoding every frame into a buffer of its own and never
   * writing to it again; `serveLinkDriver` copies frames that arrive from the bus.
   *
   * The other way the rule is reversed: a received frame (a `frame` event) is the driver's, and
   * the listener may read it only during the call (see {@link LinkEvent}).
   * @returns true when the link took the frame; false when it is busy (the frame was NOT taken;
   *   wait for a `writable` event) or the link is unknown or down.
   * @throws MuxError MUX_FRAME_TOO_LARGE when the frame exceeds the link's `maxFrameBytes`.
   */
  send(linkId: LinkId, frame: Uint8Array): boolean;
  /** Asks the transport to close a link (a refused handshake); a `down` event follows. */
  closeLink(linkId: LinkId, reasonCode: string, reason: string): void;
  /** Stops the driver; no events follow. */
  close(): Promise<void>;
}
