/**
 * Sync sessions over the multiplexer: one {@link MessageChannel} per remote peer on the
 * multiplexer's sync stream, and a sync session on each.
 *
 * @remarks
 * The multiplexer authenticates the remote peer (its handshake names it), keeps a peer's streams
 * across link flaps for a while (nothing lost or repeated), and resets them when the peer
 * restarts or the session expired. So a sync session lives as long as the multiplexer's session
 * with that peer: it survives links coming and going, and a `session-reset` or a new `peer-up`
 * ends it and starts a fresh one, which resumes from the receiver's durable checkpoint.
 * Inbound messages are queued per peer; the sync protocol's window bounds each queue.
 *
 * A peer that came over a link of a restricted principal (the gateway's WebSocket endpoint: an
 * app's key) carries its permissions on its `peer-up`/`session-reset` event; its session enforces
 * them (`SessionOptions.permissions`). Permissions that do not compile end nothing but that
 * peer's sync: it is reported and not synced with.
 */
import { compilePermissions } from '@lattice/dql';
import type { Permissions } from '@lattice/dql';
import type { MultiplexerPort, PeerId } from '@lattice/multiplexer';
import { Priority } from '@lattice/multiplexer';
import type { v1 } from '@lattice/proto';
import { InboxChannel } from './channel.js';
import { permissionsFromProto } from './permissions.js';
import type { MergeEngine } from './engine.js';
import { restartOf } from './session.js';

/** Messages kept per peer between two sessions (the sync window bounds what is in flight). */
const MAX_ORPHANS = 10_000;

/** Runs the engine's sync sessions over the multiplexer's peers; returns a stop function. */
export function syncOverMultiplexer(
  engine: MergeEngine,
  mux: MultiplexerPort,
  options: { readonly onError?: (peer: string, err: unknown) => void } = {},
): () => void {
  if (mux.peerId !== engine.peerId) {
    throw new RangeError(
      `the merge engine is ${engine.peerId}, the multiplexer ${mux.peerId}: one peer id`,
    );
  }
  const channels = new Map<PeerId, InboxChannel>();
  const starting = new Map<PeerId, Promise<void>>();
  // Messages that arrive while a session hands over to the next (after the remote's new hello,
  // before the new channel exists) belong to the next session: they wait here.
  const orphans = new Map<PeerId, Uint8Array[]>();
  let stopped = false;
  // What each restricted peer may read and write; absent: everything.
  const permissions = new Map<PeerId, Permissions>();
  const setPermissions = (peer: PeerId, spec: v1.IPermissions | undefined): boolean => {
    permissions.delete(peer);
    if (spec === undefined) return true;
    try {
      permissions.set(peer, compilePermissions(permissionsFromProto(spec)));
      return true;
    } catch (err) {
      channels.get(peer)?.close();
      options.onError?.(peer, err);
      return false;
    }
  };
  const start = (peer: PeerId, first?: readonly Uint8Array[], sessionId?: Uint8Array): void => {
    channels.get(peer)?.close();
    // A channel exists from now on, so messages that arrive while the previous session winds
    // down are kept for the new one.
    const channel: InboxChannel = new InboxChannel(
      (m) => mux.send(peer, m, { stream: Priority.SYNC }),
      () => {
        if (channels.get(peer) === channel) channels.delete(peer);
      },
    );
    channels.set(peer, channel);
    for (const m of first ?? []) channel.deliver(m);
    const previous = starting.get(peer) ?? Promise.resolve();
    const next = previous
      .then(() => engine.disconnect(peer))
      .then(() => {
        if (stopped || channel.closed) return;
        engine
          .connect(peer, channel, { permissions: permissions.get(peer), sessionId })
          .catch((err: unknown) => {
            const restart = restartOf(err);
            // The remote started over: so do we (under the same session id), handing the new
            // session the remote's hello and whatever followed it.
            if (restart) {
              const after = [...channel.takeUnread(), ...(orphans.get(peer) ?? [])];
              orphans.delete(peer);
              start(peer, [restart.hello, ...after], restart.sessionId);
            }
            // Another failure (a protocol error) is reported; the next peer-up starts again.
            else if ((err as { code?: string }).code !== 'MERGE_CLOSED')
              options.onError?.(peer, err);
          });
      });
    starting.set(peer, next);
  };
  const offEvents = mux.on((event) => {
    if (event.type === 'peer-up' || event.type === 'session-reset') {
      orphans.delete(event.peerId); // The multiplexer started over: nothing before counts.
      if (setPermissions(event.peerId, event.permissions)) start(event.peerId);
    }
  });
  const offMessages = mux.onMessage((m) => {
    if (m.stream !== Priority.SYNC) return;
    const channel = channels.get(m.peerId);
    if (channel !== undefined && !channel.closed) {
      channel.deliver(m.data);
      return;
    }
    const waiting = orphans.get(m.peerId) ?? [];
    if (waiting.length < MAX_ORPHANS) waiting.push(m.data);
    orphans.set(m.peerId, waiting);
  });
  for (const p of mux.peers()) {
    if (p.connected && setPermissions(p.peerId, p.permissions)) start(p.peerId);
  }
  return () => {
    stopped = true;
    offEvents();
    offMessages();
    orphans.clear();
    for (const c of [...channels.values()]) c.close();
  };
}
