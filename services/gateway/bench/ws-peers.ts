// The remote side of the gateway benchmark's WebSocket case, in its own process so that its
// memory is not counted as the gateway's: `node --import tsx ws-peers.ts MODE URL KEY N`.
//   MODE bare:    N plain `ws` connections (the anchor: a bare WebSocket server's cost).
//   MODE lattice: N remote peers, each with its own identity, Multiplexer, WebSocket link and
//                 merge engine syncing with the gateway's peer (a real mux handshake and sync
//                 session each).
// Prints "start" when it begins connecting and "connected <ms>" once all N links are open, then
// waits for stdin to close.
import { WebSocket } from 'ws';
import { MergeEngine, syncOverMultiplexer } from '@lattice/merge';
import { createIdentity, Multiplexer, SystemClock } from '@lattice/multiplexer';
import { DocumentStore, MemoryEngine } from '@lattice/store';
import { WebSocketLinkDriver } from '@lattice/gateway';

const [mode, url, key, count] = process.argv.slice(2);
const n = Number(count);
const BATCH = 50;
const started = performance.now();
const keep: unknown[] = [];
const clock = new SystemClock();

async function bare(): Promise<void> {
  const ws = new WebSocket(url as string, { headers: { authorization: `Bearer ${key}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  keep.push(ws);
}

async function peer(i: number): Promise<void> {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, i + 1);
  const identity = createIdentity(seed);
  const engine = MergeEngine.open({
    peerId: identity.peerId,
    store: await DocumentStore.open(new MemoryEngine()),
  });
  const mux = new Multiplexer({ identity, clock });
  const driver = new WebSocketLinkDriver();
  mux.attach(driver);
  syncOverMultiplexer(engine, mux);
  await driver.connect(url as string, { apiKey: key as string });
  keep.push({ engine, mux, driver });
}

process.stdout.write('start\n');
for (let i = 0; i < n; i += BATCH) {
  await Promise.all(
    Array.from({ length: Math.min(BATCH, n - i) }, (_, j) =>
      mode === 'bare' ? bare() : peer(i + j),
    ),
  );
}
process.stdout.write(`connected ${Math.round(performance.now() - started)}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
