import { describe, expect, it } from 'vitest';
import { createIdentity, LoopbackNetwork, Multiplexer, SimulatedClock } from '@lattice/multiplexer';
import type { MultiplexerEvent } from '@lattice/multiplexer';
import { restrictedDriver as restricted } from '@lattice/multiplexer/testing';
import type { v1 } from '@lattice/proto';

const region1: v1.IPermissions = {
  read: { queriesByCollection: { cars: { queries: ["_id.region = '1'"] } } },
  write: { queriesByCollection: { cars: { queries: ["_id.region = '1'"] } } },
};

describe('permissions of a restricted peer', () => {
  it('come with its peer-up event and peers(); the other side sees none', () => {
    const clock = new SimulatedClock();
    const net = new LoopbackNetwork({ clock });
    const hub = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(5)), clock });
    const app = new Multiplexer({ identity: createIdentity(new Uint8Array(32).fill(6)), clock });
    const dh = net.driver('hub');
    const da = net.driver('app');
    const events: MultiplexerEvent[] = [];
    hub.on((e) => events.push(e));
    hub.attach(restricted(dh, region1));
    app.attach(da);
    net.connect(dh, da);
    clock.runUntil(
      () => hub.peers().some((p) => p.connected) && app.peers().some((p) => p.connected),
    );
    expect(events.find((e) => e.type === 'peer-up')).toEqual({
      type: 'peer-up',
      peerId: app.peerId,
      permissions: region1,
    });
    expect(hub.peers()[0]?.permissions).toEqual(region1);
    expect(app.peers()[0]?.permissions).toBeUndefined();

    // A second link from the same peer that claims other permissions is refused; the first stays.
    const dh2 = net.driver('hub-2');
    const da2 = net.driver('app-2');
    hub.attach(dh2);
    app.attach(da2);
    net.connect(dh2, da2);
    clock.runUntil(() => events.some((e) => e.type === 'link-refused'));
    const refused = events.find((e) => e.type === 'link-refused');
    expect(refused?.type === 'link-refused' && refused.error.code).toBe('MUX_PERMISSIONS_MISMATCH');
    expect(hub.peers()[0]?.connected).toBe(true);
    expect(hub.peers()[0]?.permissions).toEqual(region1);
  });
});
