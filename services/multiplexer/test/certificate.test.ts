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
    expect(hub.adoptRevocations(list)?.peerIds).toEqual([deviceId.peerId]);
    expect(hub.revokedPeers).toBe(1);
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

  describe('revocation lists spread over the mesh', () => {
    const hubIds = [74, 75, 76, 77].map((n) => createIdentity(new Uint8Array(32).fill(n)));

    /**
     * Hubs `hub0 … hubN` in a line (certified by the authority, trusting it), the device on the
     * last one, every link up.
     */
    function line(hubs: number) {
      const clock = new SimulatedClock();
      const wallClock = () => NOW + clock.now();
      const net = new LoopbackNetwork({ clock });
      const make = (identity: ReturnType<typeof createIdentity>, certificate: Uint8Array) =>
        new Multiplexer({
          identity,
          clock,
          wallClock,
          authorities: [authority.publicKey],
          certificate,
        });
      const muxes = hubIds
        .slice(0, hubs)
        .map((id) =>
          make(id, issueCertificate(authority, { peerId: id.peerId, notAfterMs: NOW + HOUR })),
        );
      const device = make(deviceId, cert);
      const events = new Map<Multiplexer, MultiplexerEvent[]>();
      for (const m of [...muxes, device]) {
        const list: MultiplexerEvent[] = [];
        m.on((e) => list.push(e));
        events.set(m, list);
      }
      const join = (a: Multiplexer, b: Multiplexer, name: string): void => {
        const da = net.driver(`${name}-a`);
        const db = net.driver(`${name}-b`);
        a.attach(da);
        b.attach(db);
        net.connect(da, db);
      };
      for (let i = 1; i < muxes.length; i++) join(muxes[i - 1]!, muxes[i]!, `l${i}`);
      const last = muxes[muxes.length - 1]!;
      join(last, device, 'dev');
      clock.runUntil(() =>
        [...muxes, device].every(
          (m, i) =>
            m.peers().filter((p) => p.connected).length === (i === 0 || m === device ? 1 : 2),
        ),
      );
      return { clock, net, muxes, device, last, events, join, make };
    }
    const hex = (lists: readonly Uint8Array[]) => lists.map((l) => Buffer.from(l).toString('hex'));
    const adopted = (list: MultiplexerEvent[]) =>
      list.flatMap((e) => (e.type === 'revocations-adopted' ? [e] : []));

    it('a list given to one hub reaches every hub that trusts the authority, which refuse the peer', () => {
      const { clock, muxes, device, last, events } = line(3);
      const [first, middle] = muxes as [Multiplexer, Multiplexer, Multiplexer];
      const list = issueRevocations(authority, [deviceId.peerId], NOW + 1);
      expect(first.adoptRevocations(list)?.issuedAtMs).toBe(NOW + 1);
      clock.runUntil(() => last.revokedPeers === 1);
      // Hop by hop: the middle hub learnt it from the first, the last from the middle one.
      expect(adopted(events.get(middle)!).map((e) => e.from)).toEqual([first.peerId]);
      expect(adopted(events.get(last)!).map((e) => e.from)).toEqual([middle.peerId]);
      expect(adopted(events.get(first)!).map((e) => e.from)).toEqual([undefined]);
      clock.advance(1_000);
      expect(refusal(events.get(last)!)).toBe('MUX_PEER_REVOKED');
      expect(last.peers().find((p) => p.peerId === deviceId.peerId)?.connected).toBe(false);
      // The device, revoked, never got the list; every hub holds the same bytes.
      expect(device.revocationLists()).toEqual([]);
      for (const m of muxes) expect(hex(m.revocationLists())).toEqual(hex([list]));
      // Nobody sent it back: each hub adopted it once.
      for (const m of muxes) expect(adopted(events.get(m)!)).toHaveLength(1);
    });

    it('the later list of an authority holds: an earlier one changes nothing and is not passed on', () => {
      const { clock, muxes, events } = line(2);
      const [a, b] = muxes as [Multiplexer, Multiplexer];
      const later = issueRevocations(authority, [deviceId.peerId], NOW + 10);
      const earlier = issueRevocations(authority, [], NOW + 5);
      a.adoptRevocations(later);
      clock.runUntil(() => b.revokedPeers === 1);
      expect(b.adoptRevocations(earlier)).toBeUndefined();
      expect(a.adoptRevocations(later)).toBeUndefined(); // the same list again
      clock.advance(1_000);
      expect(hex(b.revocationLists())).toEqual(hex([later]));
      expect(adopted(events.get(a)!)).toHaveLength(1);
      // A later list can lift a revocation.
      const lifted = issueRevocations(authority, [], NOW + 20);
      b.adoptRevocations(lifted);
      clock.runUntil(() => a.revokedPeers === 0);
      expect(hex(a.revocationLists())).toEqual(hex([lifted]));
    });

    it('a peer whose session starts later gets the lists held', () => {
      const { clock, muxes, join, make, events } = line(1);
      const [a] = muxes as [Multiplexer];
      const list = issueRevocations(authority, [deviceId.peerId], NOW + 1);
      a.adoptRevocations(list);
      const late = make(
        hubIds[3]!,
        issueCertificate(authority, { peerId: hubIds[3]!.peerId, notAfterMs: NOW + HOUR }),
      );
      const lateEvents: MultiplexerEvent[] = [];
      late.on((e) => lateEvents.push(e));
      join(a, late, 'late');
      clock.runUntil(() => late.revokedPeers === 1);
      expect(adopted(lateEvents).map((e) => e.from)).toEqual([a.peerId]);
      expect(adopted(events.get(a)!)).toHaveLength(1);
    });

    it('lists of another authority, forged or garbled are refused and go no further', () => {
      const { clock, muxes } = line(3);
      const [a, b, c] = muxes as [Multiplexer, Multiplexer, Multiplexer];
      const foreign = issueRevocations(rogue, [deviceId.peerId], NOW + 1);
      expect(codeOf(() => a.adoptRevocations(foreign))).toBe('MUX_CERTIFICATE_INVALID');
      const forged = v1.SignedRevocations.encode({
        ...v1.SignedRevocations.decode(foreign),
        authorityKey: authority.publicKey,
      }).finish();
      expect(codeOf(() => a.adoptRevocations(forged))).toBe('MUX_CERTIFICATE_INVALID');
      expect(codeOf(() => a.adoptRevocations(Uint8Array.of(1, 2, 3)))).toBe(
        'MUX_CERTIFICATE_INVALID',
      );
      expect(a.revokedPeers).toBe(0);
      clock.advance(1_000);
      expect(b.revocationLists()).toEqual([]);
      expect(c.revocationLists()).toEqual([]);
    });

    it('a peer that trusts another authority refuses the list from its peer and passes it no further', () => {
      // x – y – z on a mesh key; x and z trust the authority, y only the rogue.
      const clock = new SimulatedClock();
      const net = new LoopbackNetwork({ clock });
      const meshKey = new Uint8Array(16).fill(9);
      const [x, y, z] = [[authority.publicKey], [rogue.publicKey], [authority.publicKey]].map(
        (authorities, i) =>
          new Multiplexer({
            identity: hubIds[i]!,
            clock,
            wallClock: () => NOW + clock.now(),
            meshKey,
            authorities,
          }),
      ) as [Multiplexer, Multiplexer, Multiplexer];
      for (const [p, q, name] of [
        [x, y, 'xy'],
        [y, z, 'yz'],
      ] as const) {
        const dp = net.driver(`${name}-p`);
        const dq = net.driver(`${name}-q`);
        p.attach(dp);
        q.attach(dq);
        net.connect(dp, dq);
      }
      clock.runUntil(() => y.peers().filter((p) => p.connected).length === 2);
      x.adoptRevocations(issueRevocations(authority, [deviceId.peerId], NOW + 1));
      clock.runUntil(() => y.counters.revocationsRefused === 1);
      clock.advance(5_000);
      expect(y.revokedPeers).toBe(0);
      expect(z.revokedPeers).toBe(0);
      expect(z.revocationLists()).toEqual([]);
    });

    it("keeps stream 0 for the multiplexers' own messages", async () => {
      const { muxes } = line(2);
      const [a, b] = muxes as [Multiplexer, Multiplexer];
      await expect(a.send(b.peerId, Uint8Array.of(1), { stream: 0 })).rejects.toMatchObject({
        code: 'MUX_BAD_REQUEST',
      });
    });
  });
});
