import { describe, expect, it } from 'vitest';
import { v1 } from '@lattice/proto';
import {
  ControlType,
  createIdentity,
  decodeFrame,
  encodeChunks,
  LinkHandshake,
  peerIdFromPublicKey,
} from '@lattice/multiplexer';
import type { ControlFrame, Identity, MuxError, PeerId, RemoteHello } from '@lattice/multiplexer';

interface Side {
  readonly hs: LinkHandshake;
  readonly outbox: ControlFrame[];
  done?: RemoteHello;
  failed?: { error: MuxError; local: boolean };
}

function side(identity: Identity, maxFrameBytes = 20): Side {
  const s: Side = {
    outbox: [],
    hs: new LinkHandshake({
      identity,
      maxFrameBytes,
      crc: true,
      receiveWindowBytes: 1 << 20,
      maxMessageBytes: 1 << 19,
      hooks: {
        send: (frame) => s.outbox.push(decodeFrame(frame, { requireCrc: true }) as ControlFrame),
        sessionIdFor: () => new Uint8Array(16).fill(3),
        done: (remote) => (s.done = remote),
        failed: (error, local) => (s.failed = { error, local }),
      },
    }),
  };
  return s;
}

/** Delivers what each side sent to the other until both are quiet; `tamper` may rewrite frames. */
function exchange(
  a: Side,
  b: Side,
  tamper: (f: ControlFrame, from: Side) => ControlFrame = (f) => f,
): void {
  for (let round = 0; round < 10; round++) {
    const fromA = a.outbox.splice(0);
    const fromB = b.outbox.splice(0);
    if (fromA.length + fromB.length === 0) return;
    for (const f of fromA) b.hs.onControl(tamper(f, a).type, tamper(f, a).body);
    for (const f of fromB) a.hs.onControl(tamper(f, b).type, tamper(f, b).body);
  }
}

describe('link handshake', () => {
  const alice = createIdentity(new Uint8Array(32).fill(1));
  const bob = createIdentity(new Uint8Array(32).fill(2));

  it('derives the peer id from the public key, deterministically from a seed', () => {
    expect(alice.peerId).toBe(peerIdFromPublicKey(alice.publicKey));
    expect(createIdentity(new Uint8Array(32).fill(1)).peerId).toBe(alice.peerId);
    expect(alice.peerId).not.toBe(bob.peerId);
  });

  it('authenticates both sides over 20-byte frames', () => {
    const a = side(alice);
    const b = side(bob);
    a.hs.kick();
    b.hs.kick();
    exchange(a, b);
    expect(a.done?.peerId).toBe(bob.peerId);
    expect(b.done?.peerId).toBe(alice.peerId);
    expect(a.done?.receiveWindowBytes).toBe(1 << 20);
  });

  it('refuses a tampered signature with MUX_AUTH_FAILED', () => {
    const a = side(alice, 200);
    const b = side(bob, 200);
    a.hs.kick();
    b.hs.kick();
    exchange(a, b, (f, from) => {
      if (from !== b || f.type !== ControlType.AUTH) return f;
      const body = f.body.slice();
      body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 1; // inside the signature or session id
      return { ...f, body };
    });
    expect(a.done).toBeUndefined();
    expect(a.failed?.error.code).toBe('MUX_AUTH_FAILED');
    expect(a.failed?.local).toBe(true);
    expect(b.failed?.local).toBe(false); // b learnt it from a's REFUSE
  });

  it('refuses a hello whose peer id is not its key (impersonation), and another version', () => {
    const a = side(alice, 200);
    a.hs.kick();
    const forged = v1.MuxHello.encode({
      protocolVersion: 1,
      peerId: bob.peerId,
      publicKey: createIdentity(new Uint8Array(32).fill(9)).publicKey,
      nonce: new Uint8Array(16),
      receiveWindowBytes: 1,
      maxMessageBytes: 1,
    }).finish();
    for (const chunk of encodeChunks(forged, 190)) a.hs.onControl(ControlType.HELLO, chunk);
    expect(a.failed?.error.code).toBe('MUX_AUTH_FAILED');

    const c = side(alice, 200);
    const future = v1.MuxHello.encode({
      protocolVersion: 2,
      peerId: bob.peerId as PeerId,
      publicKey: bob.publicKey,
      nonce: new Uint8Array(16),
    }).finish();
    for (const chunk of encodeChunks(future, 190)) c.hs.onControl(ControlType.HELLO, chunk);
    expect(c.failed?.error.code).toBe('MUX_VERSION_MISMATCH');
  });

  it('refuses a link to itself with MUX_SELF_LINK', () => {
    const a = side(alice, 100);
    const mirror = side(alice, 100);
    a.hs.kick();
    mirror.hs.kick();
    exchange(a, mirror);
    expect(a.failed?.error.code).toBe('MUX_SELF_LINK');
    expect(a.done).toBeUndefined();
  });
});
