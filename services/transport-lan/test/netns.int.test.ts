// Three hosts in network namespaces joined by a bridge (in a fourth, "switch" namespace, so the
// test leaves the machine's own network untouched), each running a LAN peer with mDNS discovery
// and no static peers (`fixtures/netns-peer.ts`). Needs root and iproute2 (`ip`, `tc`); without
// them the test fails with the hint, it is never skipped. Namespaces have unique names and are
// always deleted.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..');
const FIXTURE = join(here, 'fixtures', 'netns-peer.ts');

interface Line {
  readonly type: string;
  readonly id?: string;
  readonly code?: string;
  readonly bytes?: number;
  readonly at?: number;
}

/** One peer process inside a namespace, with its JSON-line output. */
class NsPeer {
  readonly lines: Line[] = [];
  readonly #proc: ChildProcess;
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<void>;

  constructor(ns: string) {
    this.#proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', FIXTURE], {
      cwd: pkg,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.#proc.once('exit', () => resolve()));
    createInterface({ input: this.#proc.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as Line);
      for (const w of [...this.#waiters]) w();
    });
  }

  get id(): string {
    return this.lines.find((l) => l.type === 'ready')?.id ?? '';
  }

  /** Resolves when `condition(lines)` holds, re-checking on each new line. */
  async until(
    condition: (lines: readonly Line[]) => boolean,
    what: string,
    timeoutMs = 15_000,
  ): Promise<void> {
    if (condition(this.lines)) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!condition(this.lines)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.lines.slice(-10))}`),
        );
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  command(c: Record<string, unknown>): void {
    this.#proc.stdin?.write(`${JSON.stringify(c)}\n`);
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode === null) this.#proc.kill('SIGTERM');
    await this.exited;
  }
}

const linkedTo = (id: string) => (lines: readonly Line[]) => {
  let up = false;
  for (const l of lines) {
    if (l.type === 'up' && l.id === id) up = true;
  }
  return up;
};

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the network-namespace test needs root (ip netns, veth, bridge, tc); run the tests as root',
    );
  }
  for (const tool of ['/usr/sbin/ip', '/usr/sbin/tc']) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      throw new Error(`${tool} is missing; install it with: apt-get install -y iproute2`);
    }
  }
}

describe('LAN transport across three network namespaces joined by a bridge', () => {
  const tag = `lt${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const sw = `${tag}sw`;
  const hosts = [1, 2, 3].map((i) => `${tag}h${i}`);
  const created: string[] = [];
  const peers: NsPeer[] = [];
  const ip = (...args: string[]) => run('ip', args);
  const inNs = (ns: string, ...args: string[]) => run('ip', ['netns', 'exec', ns, ...args]);

  beforeAll(async () => {
    checkPrerequisites();
    await ip('netns', 'add', sw);
    created.push(sw);
    await inNs(sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    await inNs(sw, 'ip', 'link', 'set', 'br0', 'up');
    for (const [i, h] of hosts.entries()) {
      await ip('netns', 'add', h);
      created.push(h);
      const v = `${tag}v${i}`;
      const p = `${tag}p${i}`;
      await ip('link', 'add', v, 'type', 'veth', 'peer', 'name', p);
      await ip('link', 'set', v, 'netns', h);
      await ip('link', 'set', p, 'netns', sw);
      await inNs(sw, 'ip', 'link', 'set', p, 'master', 'br0');
      await inNs(sw, 'ip', 'link', 'set', p, 'up');
      await inNs(h, 'ip', 'link', 'set', v, 'name', 'eth0');
      await inNs(h, 'ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', 'eth0');
      await inNs(h, 'ip', 'link', 'set', 'eth0', 'up');
      await inNs(h, 'ip', 'link', 'set', 'lo', 'up');
      // mDNS sends to 224.0.0.251; a host with no default route needs a multicast route.
      await inNs(h, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');
    }
  }, 30_000);

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    for (const ns of created.reverse()) await ip('netns', 'del', ns);
  });

  it('discovery links every host to both others with no static config', async () => {
    for (const h of hosts) peers.push(new NsPeer(h));
    await Promise.all(
      peers.map((p) => p.until((ls) => ls.some((l) => l.type === 'ready'), 'ready')),
    );
    for (const p of peers) {
      for (const q of peers) {
        if (p !== q) await p.until(linkedTo(q.id), `${p.id} linked to ${q.id}`);
      }
    }
    // Exactly one link per pair: two ups per host, no duplicates torn down.
    for (const p of peers) {
      expect(
        p.lines
          .filter((l) => l.type === 'up')
          .map((l) => l.id)
          .sort(),
      ).toEqual(
        peers
          .filter((q) => q !== p)
          .map((q) => q.id)
          .sort(),
      );
    }
  }, 30_000);

  it('a peer that leaves is reported down and lost; when it comes back both others relink', async () => {
    // The peer with the largest instance id leaves: only smaller ids dial discovered peers, so
    // both others must have found it over mDNS for its two links to exist.
    const leaving = peers.reduce((x, y) => (y.id > x.id ? y : x));
    const index = peers.indexOf(leaving);
    const others = peers.filter((p) => p !== leaving);
    const gone = leaving.id;
    for (const p of others)
      expect(p.lines.some((l) => l.type === 'found' && l.id === gone)).toBe(true);
    await leaving.stop();
    for (const p of others) {
      await p.until((ls) => ls.some((l) => l.type === 'down'), 'link down');
      // Forgotten by discovery (mDNS goodbye, else the forget timeout).
      await p.until((ls) => ls.some((l) => l.type === 'lost' && l.id === gone), 'peer lost');
    }
    const back = new NsPeer(hosts[index] as string);
    peers[index] = back;
    await back.until((ls) => ls.some((l) => l.type === 'ready'), 'ready again');
    for (const p of others) await p.until(linkedTo(back.id), 'relinked');
    await back.until((ls) => others.every((p) => linkedTo(p.id)(ls)), 'back linked to both');
  }, 30_000);

  it('a link shaped to 2 Mbit/s with tc tbf still carries bulk traffic, at the shaped rate', async () => {
    const [p1, , p3] = peers as [NsPeer, NsPeer, NsPeer]; // hosts 10.77.0.1 and 10.77.0.3
    await inNs(
      hosts[2] as string,
      'tc',
      'qdisc',
      'add',
      'dev',
      'eth0',
      'root',
      'tbf',
      'rate',
      '2mbit',
      'burst',
      '32kbit',
      'latency',
      '200ms',
    );
    const frames = 40;
    const bytes = 16_384;
    const before = p1.lines.length;
    p3.command({ cmd: 'send', to: p1.id, frames, bytes });
    await p3.until((ls) => ls.some((l) => l.type === 'sending'), 'sending');
    const started = p3.lines.find((l) => l.type === 'sending')?.at ?? 0;
    await p1.until(
      (ls) => ls.slice(before).filter((l) => l.type === 'frame').length === frames,
      'every frame over the shaped link',
      20_000,
    );
    const got = p1.lines.slice(before).filter((l) => l.type === 'frame');
    expect(got.every((l) => l.bytes === bytes)).toBe(true);
    const seconds = ((got[got.length - 1]?.at ?? 0) - started) / 1000;
    // 655 360 bytes at 250 000 bytes/s is 2.6 s; the bucket's burst lets a little through early.
    expect(seconds).toBeGreaterThan(2.0);
    expect(seconds).toBeLessThan(8);
    expect(p1.lines.slice(before).some((l) => l.type === 'down')).toBe(false);
    expect(p3.lines.some((l) => l.type === 'down' && l.code === 'LAN_IDLE_TIMEOUT')).toBe(false);
  }, 30_000);
});
