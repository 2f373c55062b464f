/**
 * Identity certificates from an authority: a peer that shows a valid one gets a link under its
 * permissions, until it expires; anything else about it refuses the link.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { v1 } from '@lattice/proto';
import { tempDir } from '@lattice/testing';
import {
  createIdentity,
  issueCertificate,
  issueRevocations,
  LoopbackNetwork,
  Multiplexer,
  multiplexerConfigSchema,
  reloadCertificateFile,
  SimulatedClock,
  verifyCertificate,
  verifyRevocations,
  type MultiplexerEvent,
} from '@lattice/multiplexer';

const authority = createIdentity(new Uint8Array(32).fill(70));
const rogue = createIdentity(new Uint8Array(32).fill(71));
const hubId = createIdentity(new Uint8Array(32).fill(72));
const deviceId = createIdentity(new Uint8Array(32).fill(73));
const region1: v1.IPermissions = {
  read: { queriesByCollection: { cars: { queries: ["_id.region = '1'"] } } },
  write: { queriesByCollection: { cars: { queries: ["_id.region = '1'"] } } },
};
const NOW = Date.UTC(2026, 10, 21);
const HOUR = 3_600_000;

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

describe('identity certificates', () => {
  const cert = issueCertificate(authority, {
    peerId: deviceId.peerId,
    permissions: region1,
    notAfterMs: NOW + HOUR,
    name: 'truck 12',
  });

  it('verify for their peer while valid, from a trusted authority', () => {
    const ok = verifyCertificate(cert, deviceId.peerId, [authority.publicKey], NOW);
    expect(ok).toMatchObject({ peerId: deviceId.peerId, name: 'truck 12', notAfterMs: NOW + HOUR });
    expect(v1.Permissions.toObject(v1.Permissions.fromObject(ok.permissions ?? {}))).toEqual(
      v1.Permissions.toObject(v1.Permissions.fromObject(region1)),
    );
  });

  it('refuse another peer, an untrusted or forged issuer, tampered claims and expiry', () => {
    const invalid = 'MUX_CERTIFICATE_INVALID';
    expect(codeOf(() => verifyCertificate(cert, hubId.peerId, [authority.publicKey], NOW))).toBe(
      invalid,
    );
    expect(codeOf(() => verifyCertificate(cert, deviceId.peerId, [rogue.publicKey], NOW))).toBe(
      invalid,
    );
    expect(
      codeOf(() => verifyCertificate(cert, deviceId.peerId, [authority.publicKey], NOW + HOUR)),
    ).toBe(invalid);
    // Claims widened after signing: everything instead of region 1.
    const decoded = v1.IdentityCertificate.decode(cert);
    const widened = v1.IdentityCertificate.encode({
      ...decoded,
      claims: v1.IdentityClaims.encode({
        ...v1.IdentityClaims.decode(decoded.claims),
        permissions: null,
      }).finish(),
    }).finish();
    expect(
      codeOf(() => verifyCertificate(widened, deviceId.peerId, [authority.publicKey], NOW)),
    ).toBe(invalid);
    // Signed by a rogue key that claims to be the authority.
    const forged = v1.IdentityCertificate.encode({
      ...v1.IdentityCertificate.decode(
        issueCertificate(rogue, { peerId: deviceId.peerId, notAfterMs: NOW + HOUR }),
      ),
      authorityKey: authority.publicKey,
    }).finish();
    expect(
      codeOf(() => verifyCertificate(forged, deviceId.peerId, [authority.publicKey], NOW)),
    ).toBe(invalid);
    expect(
      codeOf(() =>
        verifyCertificate(new Uint8Array([1, 2, 3]), deviceId.peerId, [authority.publicKey], NOW),
      ),
    ).toBe(invalid);
  });

  /** A hub that trusts the authority and a device with `certificate`, on one loopback link. */
  function link(certificate: Uint8Array | undefined) {
    const clock = new SimulatedClock();
    const wallClock = () => NOW + clock.now();
    const net = new LoopbackNetwork({ clock });
    const hub = new Multiplexer({
      identity: hubId,
      clock,
      wallClock,
      authorities: [authority.publicKey],
    });
    const device = new Multiplexer({ identity: deviceId, clock, wallClock, certificate });
    const events: MultiplexerEvent[] = [];
    hub.on((e) => events.push(e));
    const dh = net.driver('hub');
    const dd = net.driver('device');
    hub.attach(dh);
    device.attach(dd);
    net.connect(dh, dd);
    clock.runUntil(
      () => hub.peers().some((p) => p.connected) || events.some((e) => e.type === 'link-refused'),
    );
    return { clock, hub, device, events };
  }
  const refusal = (events: MultiplexerEvent[]) => {
    const e = events.find((x) => x.type === 'link-refused');
    return e?.type === 'link-refused' ? e.error.code : undefined;
  };

  it('admit a peer on its certificate, under its permissions, until it expires', () => {
    const { clock, hub, events } = link(cert);
    expect(events.find((e) => e.type === 'peer-up')).toEqual({
      type: 'peer-up',
      peerId: deviceId.peerId,
      permissions: expect.objectContaining({ read: expect.anything() }),
    });
    expect(hub.peers()[0]?.permissions).toBeDefined();
    clock.advance(HOUR + 1_000);
    expect(refusal(events)).toBe('MUX_CERTIFICATE_EXPIRED');
    expect(hub.peers().filter((p) => p.connected)).toEqual([]);
  });

  it('are renewed without a restart: a new certificate shows on the next link', async () => {
    const { clock, device, events } = link(undefined);
    expect(refusal(events)).toBe('MUX_NOT_IN_MESH');
    // The operator issues a certificate; the device reads it (SIGHUP) and links again.
    await using dir = await tempDir('lattice-cert-');
    const file = join(dir.path, 'device.cert');
    // Valid now by the wall clock too (the reload checks it against the real time).
    const renewed = issueCertificate(authority, {
      peerId: deviceId.peerId,
      notAfterMs: Date.now() + HOUR,
    });
    writeFileSync(file, Buffer.from(renewed).toString('base64'));
    const config = multiplexerConfigSchema.parse({ certificateFile: file });
    reloadCertificateFile(device, config);
    const net = new LoopbackNetwork({ clock });
    const hub = new Multiplexer({
      identity: hubId,
      clock,
      wallClock: () => NOW + clock.now(),
      authorities: [authority.publicKey],
    });
    const dh = net.driver('hub-2');
    const dd = net.driver('device-2');
    hub.attach(dh);
    device.attach(dd);
    net.connect(dh, dd);
    clock.runUntil(() => hub.peers().some((p) => p.connected));
    expect(hub.peers()[0]?.peerId).toBe(deviceId.peerId);
    // A file that is not this peer's changes nothing.
    writeFileSync(
      file,
      Buffer.from(
        issueCertificate(authority, { peerId: hubId.peerId, notAfterMs: Date.now() + HOUR }),
      ).toString('base64'),
    );
    expect(codeOf(() => reloadCertificateFile(device, config))).toBe('MUX_CERTIFICATE_INVALID');
  });

  it('are revoked by a signed list: the peer is disconnected and refused from then on', () => {
    const list = issueRevocations(authority, [deviceId.peerId], NOW);
    expect(verifyRevocations(list, [authority.publicKey]).peerIds).toEqual([deviceId.peerId]);
    expect(codeOf(() => verifyRevocations(list, [rogue.publicKey]))).toBe(
      'MUX_CERTIFICATE_INVALID',
    );
    const tampered = v1.SignedRevocations.encode({
      ...v1.SignedRevocations.decode(list),
      revocations: v1.IdentityRevocations.encode({ peerIds: [], issuedAtMs: NOW }).finish(),
    }).finish();
    expect(codeOf(() => verifyRevocations(tampered, [authority.publicKey]))).toBe(
      'MUX_CERTIFICATE_INVALID',
    );

    const { clock, hub, device, events } = link(cert);
    expect(hub.peers()[0]?.connected).toBe(true);
    hub.setRevoked(verifyRevocations(list, [authority.publicKey]).peerIds);
    clock.advance(1_000);
    expect(refusal(events)).toBe('MUX_PEER_REVOKED');
    expect(hub.peers().filter((p) => p.connected)).toEqual([]);
    // It comes back on a new link: refused.
    const net = new LoopbackNetwork({ clock });
    const dh = net.driver('hub-3');
    const dd = net.driver('device-3');
    hub.attach(dh);
    device.attach(dd);
    events.length = 0;
    net.connect(dh, dd);
    clock.runUntil(() => events.some((e) => e.type === 'link-refused'));
    expect(refusal(events)).toBe('MUX_PEER_REVOKED');
    expect(hub.peers().filter((p) => p.connected)).toEqual([]);
  });

  it('refuse a peer without a certificate, and one with a certificate of another authority', () => {
    expect(refusal(link(undefined).events)).toBe('MUX_NOT_IN_MESH');
    const foreign = issueCertificate(rogue, { peerId: deviceId.peerId, notAfterMs: NOW + HOUR });
    expect(refusal(link(foreign).events)).toBe('MUX_CERTIFICATE_INVALID');
  });
});
