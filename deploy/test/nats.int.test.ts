/**
 * The NATS configurations of `deploy/nats/`, started for real with `nats-server -c` (ports moved to
 * free ones, nothing else changed), with a real `lattice merge` process on one server and its
 * client on another.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { MergeClient } from '@lattice/merge';
import { Subjects, v1 } from '@lattice/proto';
import { nextValue, tempDir, waitFor, type TempDir } from '@lattice/testing';
import {
  freePorts,
  readDeployFile,
  startConfiguredNats,
  startLatticeService,
  template,
  type ConfiguredNats,
} from './support.js';

const MB = 1024 * 1024;

/** What `/varz` reports that these tests read. */
interface Varz {
  server_id: string;
  server_name: string;
  host: string;
  http_host: string;
  max_payload: number;
}

let dir: TempDir;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await tempDir('lattice-deploy-nats-');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await dir.remove();
});

function track<T extends { stop(): Promise<void> } | { close(): Promise<void> }>(resource: T): T {
  cleanups.push(() => ('stop' in resource ? resource.stop() : resource.close()));
  return resource;
}

function namespace(): string {
  return `deploy-${randomBytes(4).toString('hex')}`;
}

/** Starts `lattice merge` (RocksDB in the temp dir, an identity file) on `natsUrl`. */
async function startMerge(ns: string, natsUrl: string, healthNatsUrl: string): Promise<void> {
  track(
    await startLatticeService({
      service: 'merge',
      namespace: ns,
      healthNatsUrl,
      flags: [
        '--nats-url',
        natsUrl,
        '--namespace',
        ns,
        '--data',
        join(dir.path, `${ns}-data`),
        '--identity-file',
        join(dir.path, `${ns}-identity.key`),
        '--log-level',
        'warn',
      ],
    }),
  );
}

/** An INSERT then a SELECT through `MergeClient` on `natsUrl`: the merge service answers both. */
async function insertAndSelect(ns: string, natsUrl: string): Promise<void> {
  const bus = track(await NatsBus.connect({ servers: natsUrl, name: 'deploy-test-client' }));
  const merge = new MergeClient(bus, new Subjects(ns), { timeoutMs: 10_000 });
  const inserted = await merge.execute('INSERT INTO notes DOCUMENTS (:d)', {
    d: { _id: 'n1', text: 'across the servers' },
  });
  expect(inserted.mutatedIds).toEqual(['n1']);
  const selected = await merge.execute('SELECT * FROM notes WHERE _id = :id', { id: 'n1' });
  expect(selected.items).toEqual([{ _id: 'n1', text: 'across the servers' }]);
}

describe('deploy/nats/nats-server.conf (single node)', () => {
  it('listens on loopback only and carries an 8 MB Lattice message', async () => {
    const [client, monitor] = (await freePorts(2)) as [number, number];
    const config = template(await readDeployFile('nats/nats-server.conf'), [
      ['listen: 127.0.0.1:4222', `listen: 127.0.0.1:${client}`],
      ['http: 127.0.0.1:8222', `http: 127.0.0.1:${monitor}`],
    ]);
    const nats = track(
      await startConfiguredNats({
        dir: dir.path,
        name: 'single',
        config,
        clientPort: client,
        monitorPort: monitor,
      }),
    );
    const varz = await nats.monitor<Varz>('/varz');
    expect(varz.host).toBe('127.0.0.1');
    expect(varz.http_host).toBe('127.0.0.1');
    expect(varz.max_payload).toBe(8 * MB);

    // A message just under the limit (headers take the rest) crosses the server whole.
    const bus = track(await NatsBus.connect({ servers: nats.url }));
    const subject = `lattice.${namespace()}.test.big`;
    const sub = bus.subscribe(subject);
    await bus.flush();
    const payload = new Uint8Array(8 * MB - 64 * 1024).fill(7);
    bus.publish(subject, payload);
    const got = await nextValue(sub[Symbol.asyncIterator](), { timeoutMs: 10_000 });
    expect(got.data.length).toBe(payload.length);
    expect(got.data[got.data.length - 1]).toBe(7);
  });
});

describe('deploy/nats/cluster (3 nodes)', () => {
  it('forms a cluster; merge on node 1 and multiplexer on node 2 serve a client on node 3 as one peer', async () => {
    const ports = await freePorts(12);
    const at = (kind: number, node: number): number => ports[kind * 3 + node] as number;
    const [CLIENT, MONITOR, ROUTE, LEAF] = [0, 1, 2, 3];
    const nodes: ConfiguredNats[] = [];
    for (let i = 0; i < 3; i++) {
      const config = template(await readDeployFile(`nats/cluster/node-${i + 1}.conf`), [
        ['listen: 0.0.0.0:4222', `listen: 127.0.0.1:${at(CLIENT, i)}`],
        ['http: 127.0.0.1:8222', `http: 127.0.0.1:${at(MONITOR, i)}`],
        ['listen: 0.0.0.0:6222', `listen: 127.0.0.1:${at(ROUTE, i)}`],
        ['listen: 0.0.0.0:7422', `listen: 127.0.0.1:${at(LEAF, i)}`],
        ['nats-1.lattice.internal:6222', `127.0.0.1:${at(ROUTE, 0)}`],
        ['nats-2.lattice.internal:6222', `127.0.0.1:${at(ROUTE, 1)}`],
        ['nats-3.lattice.internal:6222', `127.0.0.1:${at(ROUTE, 2)}`],
      ]);
      nodes.push(
        track(
          await startConfiguredNats({
            dir: dir.path,
            name: `node-${i + 1}`,
            config,
            clientPort: at(CLIENT, i),
            monitorPort: at(MONITOR, i),
          }),
        ),
      );
    }
    const [node1, , node3] = nodes as [ConfiguredNats, ConfiguredNats, ConfiguredNats];

    // Every node routes to the two others (by server id), and all allow 8 MB messages.
    const varz = await Promise.all(nodes.map((n) => n.monitor<Varz>('/varz')));
    expect(varz.map((v) => v.server_name)).toEqual(['nats-1', 'nats-2', 'nats-3']);
    expect(varz.map((v) => v.max_payload)).toEqual([8 * MB, 8 * MB, 8 * MB]);
    for (const [i, node] of nodes.entries()) {
      const others = varz.filter((_, j) => j !== i).map((v) => v.server_id);
      await waitFor(
        async () => {
          const routez = await node.monitor<{ routes?: { remote_id: string }[] }>('/routez');
          const remote = new Set((routez.routes ?? []).map((r) => r.remote_id));
          return others.every((id) => remote.has(id));
        },
        { timeoutMs: 15_000, what: `node ${i + 1} to route to both other nodes` },
      );
    }

    // A message published on node 1 reaches a subscriber on node 3.
    const ns = namespace();
    const subscriber = track(await NatsBus.connect({ servers: node3.url }));
    const publisher = track(await NatsBus.connect({ servers: node1.url }));
    const subject = `lattice.${ns}.test.hello`;
    const messages = subscriber.subscribe(subject)[Symbol.asyncIterator]();
    await subscriber.flush();
    const hello = new TextEncoder().encode('from node 1');
    // Interest crosses the route asynchronously: publish until the subscriber sees one.
    const got = await waitFor(
      async () => {
        publisher.publish(subject, hello);
        await publisher.flush();
        return nextValue(messages, { timeoutMs: 200 });
      },
      { timeoutMs: 10_000, what: 'a message from node 1 on node 3' },
    );
    expect(new TextDecoder().decode(got.data)).toBe('from node 1');

    // Real service processes: merge on node 1, multiplexer on node 2 (one identity file), their
    // client on node 3.
    await startMerge(ns, node1.url, node3.url);
    track(
      await startLatticeService({
        service: 'multiplexer',
        namespace: ns,
        healthNatsUrl: node3.url,
        flags: [
          '--nats-url',
          nodes[1]?.url ?? '',
          '--namespace',
          ns,
          '--identity-file',
          join(dir.path, `${ns}-identity.key`),
          '--transports',
          'transport-lan,gateway',
          '--log-level',
          'warn',
        ],
      }),
    );
    await insertAndSelect(ns, node3.url);
    // Both processes are one peer: the multiplexer's peer id is the merge engine's.
    const bus = track(await NatsBus.connect({ servers: node3.url }));
    const subjects = new Subjects(ns);
    const status = await new MergeClient(bus, subjects).syncStatus();
    const presence = v1.MuxPresence.decode(
      (await bus.request(subjects.request('multiplexer', 'presence'), new Uint8Array(0))).data,
    );
    expect(presence.peerId).toBe(status.peerId);
    expect(status.peerId).not.toBe('');
    expect(await readFile(join(dir.path, `${ns}-identity.key`), 'utf8')).toMatch(
      /^[0-9a-f]{64}\n$/,
    );
  }, 90_000);
});

describe('deploy/nats/leaf (an edge gateway joined to a hub)', () => {
  it("a merge service on the gateway's local server answers a client connected to the hub", async () => {
    const [hubClient, hubMonitor, hubLeaf, edgeClient, edgeMonitor] = (await freePorts(5)) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const hub = track(
      await startConfiguredNats({
        dir: dir.path,
        name: 'hub',
        config: template(await readDeployFile('nats/leaf/hub.conf'), [
          ['listen: 0.0.0.0:4222', `listen: 127.0.0.1:${hubClient}`],
          ['http: 127.0.0.1:8222', `http: 127.0.0.1:${hubMonitor}`],
          ['listen: 0.0.0.0:7422', `listen: 127.0.0.1:${hubLeaf}`],
        ]),
        clientPort: hubClient,
        monitorPort: hubMonitor,
      }),
    );
    const edge = track(
      await startConfiguredNats({
        dir: dir.path,
        name: 'leaf',
        config: template(await readDeployFile('nats/leaf/leaf.conf'), [
          ['listen: 127.0.0.1:4222', `listen: 127.0.0.1:${edgeClient}`],
          ['http: 127.0.0.1:8222', `http: 127.0.0.1:${edgeMonitor}`],
          ['@hub.lattice.example:7422', `@127.0.0.1:${hubLeaf}`],
        ]),
        clientPort: edgeClient,
        monitorPort: edgeMonitor,
      }),
    );

    // The gateway's server logs in with hub.conf's credentials and becomes a leaf of the hub.
    await waitFor(
      async () => (await hub.monitor<{ leafnodes: number }>('/leafz')).leafnodes === 1,
      { timeoutMs: 15_000, what: 'the leaf node to connect to the hub' },
    );
    const edgeVarz = await edge.monitor<Varz>('/varz');
    expect(edgeVarz.host).toBe('127.0.0.1');
    expect(edgeVarz.max_payload).toBe(8 * MB);

    const ns = namespace();
    await startMerge(ns, edge.url, hub.url);
    await insertAndSelect(ns, hub.url);
  }, 90_000);
});
