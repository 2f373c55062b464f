/**
 * A peer anywhere on the internet syncing through a gateway *process*: peer A runs as separate
 * service processes on NATS with the gateway's WebSocket sync endpoint on; peer B (in this
 * process, no NATS) connects to `ws://…/api/v4/sync` with its own multiplexer. The WebSocket link
 * reaches A's multiplexer process through the link bridge, and writes flow both ways.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { ProcessPeer } from '@lattice/cli/testing';
import { WebSocketLinkDriver } from '@lattice/gateway';
import { MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import { createIdentity, Multiplexer } from '@lattice/multiplexer';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { freePort, waitFor } from '@lattice/testing';

let bus: NatsBus;
let a: ProcessPeer;
let dir: string;

beforeAll(async () => {
  bus = await NatsBus.connect({ servers: inject('natsUrl'), name: 'relay-test' });
  dir = mkdtempSync(join(tmpdir(), 'relay-a-'));
  a = new ProcessPeer({
    name: 'relaya',
    natsUrl: inject('natsUrl'),
    dir,
    ports: { lan: await freePort(), grpc: await freePort(), http: await freePort() },
    gatewayFlags: ['--sync-endpoint', 'on'],
  });
  await a.startAll(bus);
  await a.merge(bus).subscribe('SELECT * FROM notes');
}, 120_000);

afterAll(async () => {
  await a?.stopAll();
  await bus?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a remote peer through the WebSocket endpoint of a gateway process', () => {
  it('syncs both ways', async () => {
    const identity = createIdentity();
    const engine = MergeEngine.open({
      peerId: identity.peerId,
      store: await DocumentStore.open(new MemoryEngine()),
    });
    const mux = new Multiplexer({ identity });
    const driver = new WebSocketLinkDriver();
    mux.attach(driver);
    const errors: unknown[] = [];
    const stop = syncOverMultiplexer(engine, mux, { onError: (_p, e) => errors.push(e) });
    try {
      await engine.subscribe('SELECT * FROM notes');
      await driver.connect(`ws://127.0.0.1:${a.options.ports.http}/api/v4/sync`);
      await engine.execute("INSERT INTO notes DOCUMENTS ({'_id': 'from-b', 'text': 'over ws'})");
      await a.dql("INSERT INTO notes DOCUMENTS ({'_id': 'from-a', 'text': 'over nats'})");
      await waitFor(
        async () => ((await a.one('notes', 'from-b'))?.['text'] === 'over ws' ? true : undefined),
        { timeoutMs: 30_000, what: "B's note on A" },
      );
      await waitFor(
        () =>
          engine.store.get('notes', ['from-a'])[0]?.value?.['text'] === 'over nats'
            ? true
            : undefined,
        { timeoutMs: 30_000, what: "A's note on B" },
      );
      const presence = await a.merge(bus).syncStatus();
      expect(presence.peers.map((p) => p.remotePeer)).toContain(identity.peerId);
      expect(errors).toEqual([]);
    } finally {
      stop();
      await driver.close();
      await mux.close();
      await engine.close();
    }
  }, 90_000);
});
