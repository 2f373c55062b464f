/**
 * The handshake every new link runs before it carries data, and the peer identity it proves.
 *
 * @remarks
 * Both sides send at once a HELLO (`lattice.v1.MuxHello`: protocol version, peer id, ed25519
 * public key, a fresh 16-byte nonce, receive window, max message size). On a hello, a side
 * checks the version, that the peer id is the one its key derives (`peerIdFromPublicKey`), and
 * that it is not its own id (a link to ourselves is refused), then answers an AUTH
 * (`lattice.v1.MuxAuth`): its session id for that peer and an ed25519 signature over
 *
 * ```
 * "lattice-mux/1" 0x00 | nonce of the other side | own nonce | own peer id 0x00 | other peer id 0x00 | session id
 * ```
 *
 * so a signature is bound to this link's two challenges and cannot be replayed elsewhere. A link
 * is authenticated once each side verified the other's AUTH.
 *
 * A mesh with a shared key: a side that has the key adds to its AUTH the HMAC-SHA256 of the
 * same transcript under the key (`mesh_proof`), and a side that requires membership refuses an
 * AUTH without a valid one (`MUX_NOT_IN_MESH`). The proof is bound to the link's challenges like
 * the signature, so watching a handshake teaches nothing reusable. A side may instead show an
 * identity certificate from an authority the other side trusts (`certificate.ts`): it admits the
 * remote under the certificate's permissions. Links whose transport authenticated the remote
 * itself (an app's key at the gateway, `LinkInfo.principal`) are asked for neither. Any failure sends a REFUSE
 * (`lattice.v1.MuxRefuse`) with a `MUX_*` code. Messages travel in ≤ 16 chunks
 * (`encodeChunks`), so links with 20-byte frames run the same handshake; lost chunks are
 * re-sent on a timer until the deadline.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto';
import { v1 } from '@lattice/proto';
import { muxError, type MuxError } from './errors.js';
import {
  ChunkAssembler,
  ControlType,
  CONTROL_HEADER_BYTES,
  CRC_BYTES,
  encodeChunks,
  encodeControlFrame,
  PROTOCOL_VERSION,
} from './frame-codec.js';
import type { PeerId } from './session.js';
import { verifyCertificate, type CertifiedIdentity } from './certificate.js';

/** A peer's key pair and the id derived from it. */
export interface Identity {
  readonly peerId: PeerId;
  /** Raw 32-byte ed25519 public key. */
  readonly publicKey: Uint8Array;
  readonly privateKey: KeyObject;
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The key object of a raw 32-byte ed25519 public key, for `verify`. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
}

/** The peer id of a public key: the first 16 bytes of its SHA-256, in hex. */
export function peerIdFromPublicKey(publicKey: Uint8Array): PeerId {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 32) as PeerId;
}

/**
 * A new identity: a random ed25519 key pair, or the one of a 32-byte seed (tests, or a key kept
 * in a file).
 */
export function createIdentity(seed?: Uint8Array): Identity {
  let privateKey: KeyObject;
  if (seed === undefined) {
    privateKey = generateKeyPairSync('ed25519').privateKey;
  } else {
    if (seed.length !== 32) throw new RangeError('an ed25519 seed is 32 bytes');
    privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
  }
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length));
  return { peerId: peerIdFromPublicKey(publicKey), publicKey, privateKey };
}

function transcript(
  otherNonce: Uint8Array,
  ownNonce: Uint8Array,
  ownId: string,
  otherId: string,
  sessionId: Uint8Array,
): Buffer {
  return Buffer.concat([
    Buffer.from('lattice-mux/1\0'),
    otherNonce,
    ownNonce,
    Buffer.from(`${ownId}\0${otherId}\0`),
    sessionId,
  ]);
}

/** The mesh membership proof of a transcript: HMAC-SHA256 under the mesh key. */
function meshProof(meshKey: Uint8Array, signed: Uint8Array): Buffer {
  return createHmac('sha256', meshKey).update(signed).digest();
}

/** What the handshake learned about the other side. */
export interface RemoteHello {
  readonly peerId: PeerId;
  readonly publicKey: Uint8Array;
  readonly receiveWindowBytes: number;
  readonly maxMessageBytes: number;
  /** The remote's session id for us. */
  readonly sessionId: Uint8Array;
  /** Whether the remote's multiplexer keeps stream 0 for itself (`MuxHello.control_stream`). */
  readonly controlStream: boolean;
  /** What a trusted authority certified about the remote, when it showed a certificate. */
  readonly certified?: CertifiedIdentity | undefined;
}

/** What a {@link LinkHandshake} needs from the multiplexer. */
export interface HandshakeHooks {
  /** Sends one control frame on the link (best effort: the handshake re-sends). */
  send(frame: Uint8Array): void;
  /** Our session id for a peer (created on first use). */
  sessionIdFor(peerId: PeerId): Uint8Array;
  done(remote: RemoteHello): void;
  /** The handshake failed here (`local`) or the other side refused. */
  failed(error: MuxError, local: boolean): void;
}

/** The handshake state of one link; see the module comment. */
export class LinkHandshake {
  readonly #identity: Identity;
  readonly #hooks: HandshakeHooks;
  readonly #maxBody: number;
  readonly #crc: boolean;
  readonly #meshKey: Uint8Array | undefined;
  readonly #requireMembership: boolean;
  readonly #authorities: readonly Uint8Array[];
  readonly #certificate: Uint8Array | undefined;
  readonly #wallClock: () => number;
  readonly #nonce = new Uint8Array(randomBytes(16));
  readonly #hello: Uint8Array;
  readonly #assemblers = new Map<number, ChunkAssembler>();
  #remote: v1.MuxHello | undefined;
  #remoteAuth: Uint8Array | undefined;
  #result: RemoteHello | undefined;
  #finished = false;
  #failed = false;

  constructor(init: {
    readonly identity: Identity;
    readonly maxFrameBytes: number;
    readonly crc: boolean;
    readonly receiveWindowBytes: number;
    readonly maxMessageBytes: number;
    readonly hooks: HandshakeHooks;
    /** This peer's mesh key: its AUTH proves membership with it. */
    readonly meshKey?: Uint8Array | undefined;
    /** Authorities whose certificates admit a remote (raw ed25519 public keys). */
    readonly authorities?: readonly Uint8Array[] | undefined;
    /** This peer's certificate (an encoded `IdentityCertificate`), shown in its AUTH. */
    readonly certificate?: Uint8Array | undefined;
    /**
     * Refuse a remote that proves neither the mesh key nor a certificate of a trusted authority
     * (needs `meshKey` or `authorities`).
     */
    readonly requireMembership?: boolean;
    /** Unix ms, for certificate expiry (default `Date.now`). */
    readonly wallClock?: () => number;
  }) {
    this.#authorities = init.authorities ?? [];
    if (
      init.requireMembership === true &&
      init.meshKey === undefined &&
      this.#authorities.length === 0
    )
      throw new RangeError('requiring membership needs a mesh key or trusted authorities');
    this.#meshKey = init.meshKey;
    this.#requireMembership = init.requireMembership ?? false;
    this.#certificate = init.certificate;
    this.#wallClock = init.wallClock ?? Date.now;
    this.#identity = init.identity;
    this.#hooks = init.hooks;
    this.#crc = init.crc;
    this.#maxBody = init.maxFrameBytes - CONTROL_HEADER_BYTES - (init.crc ? CRC_BYTES : 0);
    this.#hello = v1.MuxHello.encode({
      protocolVersion: PROTOCOL_VERSION,
      peerId: init.identity.peerId,
      publicKey: init.identity.publicKey,
      nonce: this.#nonce,
      receiveWindowBytes: init.receiveWindowBytes,
      maxMessageBytes: init.maxMessageBytes,
      controlStream: true,
    }).finish();
  }

  /** Whether both AUTHs were exchanged and verified (our own may still be in flight). */
  get isDone(): boolean {
    return this.#result !== undefined;
  }

  /** The remote peer once known (after its hello). */
  get remotePeerId(): PeerId | undefined {
    return this.#remote?.peerId as PeerId | undefined;
  }

  /** Sends (or re-sends) what the other side may still need. */
  kick(): void {
    if (this.#finished) return;
    if (this.#remoteAuth === undefined) this.#sendMessage(ControlType.HELLO, this.#hello);
    if (this.#remote !== undefined) this.#sendAuth();
  }

  /** Handles a HELLO, AUTH or REFUSE frame body. */
  onControl(type: ControlType, body: Uint8Array): void {
    if (this.#failed || (this.#finished && type === ControlType.AUTH)) return;
    let assembler = this.#assemblers.get(type);
    if (assembler === undefined) {
      assembler = new ChunkAssembler();
      this.#assemblers.set(type, assembler);
    }
    const message = assembler.add(body); // throws MUX_FRAME_MALFORMED, counted by the caller
    if (message === undefined) return;
    if (type === ControlType.HELLO) this.#onHello(message);
    else if (type === ControlType.AUTH) this.#onAuth(message);
    else if (type === ControlType.REFUSE) {
      const refuse = v1.MuxRefuse.decode(message);
      this.#fail(
        muxError(
          'MUX_AUTH_FAILED',
          `remote refused the link: ${refuse.reasonCode} ${refuse.reason}`,
          {
            reasonCode: refuse.reasonCode,
          },
        ),
        false,
      );
    }
  }

  /** Refuses the link with a reason (sent to the other side). */
  refuse(error: MuxError): void {
    this.#sendMessage(
      ControlType.REFUSE,
      v1.MuxRefuse.encode({ reasonCode: error.code, reason: error.message }).finish(),
    );
    this.#fail(error, true);
  }

  #onHello(message: Uint8Array): void {
    if (this.#finished) {
      // Our AUTH was lost: the other side says hello again.
      if (this.#result !== undefined) this.#sendAuth();
      return;
    }
    const hello = v1.MuxHello.decode(message);
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.refuse(
        muxError('MUX_VERSION_MISMATCH', `protocol version ${hello.protocolVersion}`, {
          version: String(hello.protocolVersion),
        }),
      );
      return;
    }
    if (hello.publicKey.length !== 32 || hello.nonce.length !== 16) {
      this.refuse(muxError('MUX_AUTH_FAILED', 'hello without a valid key or nonce'));
      return;
    }
    if (peerIdFromPublicKey(hello.publicKey) !== hello.peerId) {
      this.refuse(
        muxError('MUX_AUTH_FAILED', 'peer id does not match its key', { peerId: hello.peerId }),
      );
      return;
    }
    if (hello.peerId === this.#identity.peerId) {
      this.refuse(
        muxError('MUX_SELF_LINK', 'the link leads back to this peer', { peerId: hello.peerId }),
      );
      return;
    }
    if (this.#remote !== undefined && this.#remote.peerId !== hello.peerId) {
      this.refuse(muxError('MUX_AUTH_FAILED', 'a second hello with another peer id'));
      return;
    }
    this.#remote = hello;
    this.#sendAuth();
    if (this.#remoteAuth !== undefined) this.#onAuth(this.#remoteAuth);
  }

  #onAuth(message: Uint8Array): void {
    const remote = this.#remote;
    if (remote === undefined) {
      this.#remoteAuth = message; // verified when the hello arrives
      return;
    }
    const auth = v1.MuxAuth.decode(message);
    const key = ed25519PublicKey(remote.publicKey);
    const signed =
      auth.sessionId.length >= 8 &&
      auth.sessionId.length <= 32 &&
      transcript(this.#nonce, remote.nonce, remote.peerId, this.#identity.peerId, auth.sessionId);
    if (!signed || !verify(null, signed, key, auth.signature)) {
      this.refuse(muxError('MUX_AUTH_FAILED', 'bad signature', { peerId: remote.peerId }));
      return;
    }
    let certified: CertifiedIdentity | undefined;
    if (auth.certificate.length > 0 && this.#authorities.length > 0) {
      try {
        certified = verifyCertificate(
          auth.certificate,
          remote.peerId,
          this.#authorities,
          this.#wallClock(),
        );
      } catch (error) {
        this.refuse(error as MuxError);
        return;
      }
    }
    if (this.#requireMembership && certified === undefined) {
      const proof = auth.meshProof;
      const expected = this.#meshKey && meshProof(this.#meshKey, signed);
      if (!expected || proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
        const why =
          this.#meshKey === undefined
            ? 'the remote shows no certificate of an authority trusted here'
            : proof.length === 0
              ? 'the remote has no mesh key (and no certificate trusted here): this mesh needs one'
              : 'the remote proves membership of another mesh (another mesh key)';
        this.refuse(muxError('MUX_NOT_IN_MESH', why, { peerId: remote.peerId }));
        return;
      }
    }
    this.#remoteAuth = message;
    this.#finished = true;
    this.#result = {
      peerId: remote.peerId as PeerId,
      publicKey: remote.publicKey,
      receiveWindowBytes: remote.receiveWindowBytes,
      maxMessageBytes: remote.maxMessageBytes,
      sessionId: auth.sessionId,
      controlStream: remote.controlStream,
      ...(certified === undefined ? {} : { certified }),
    };
    this.#hooks.done(this.#result);
  }

  #sendAuth(): void {
    const remote = this.#remote;
    if (remote === undefined) return;
    const sessionId = this.#hooks.sessionIdFor(remote.peerId as PeerId);
    const signed = transcript(
      remote.nonce,
      this.#nonce,
      this.#identity.peerId,
      remote.peerId,
      sessionId,
    );
    const signature = sign(null, signed, this.#identity.privateKey);
    this.#sendMessage(
      ControlType.AUTH,
      v1.MuxAuth.encode({
        signature,
        sessionId,
        ...(this.#meshKey === undefined ? {} : { meshProof: meshProof(this.#meshKey, signed) }),
        ...(this.#certificate === undefined ? {} : { certificate: this.#certificate }),
      }).finish(),
    );
  }

  #sendMessage(type: ControlType, message: Uint8Array): void {
    for (const body of encodeChunks(message, this.#maxBody)) {
      this.#hooks.send(encodeControlFrame({ type, body, crc: this.#crc }));
    }
  }

  #fail(error: MuxError, local: boolean): void {
    // A REFUSE counts even after our side verified the other: it does not trust us.
    if (this.#failed) return;
    this.#failed = true;
    this.#finished = true;
    this.#hooks.failed(error, local);
  }
}
