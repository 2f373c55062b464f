import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { requireProgram } from './binaries.js';
import { killProcess } from './process.js';
import { tempDir } from './temp.js';
import { waitFor } from './wait.js';

/** Two real ttys joined back to back by socat, as a USB cable between two machines. */
export interface PtyPair extends AsyncDisposable {
  /** Path of one end (a symlink to /dev/pts/N). */
  readonly a: string;
  /** Path of the other end. */
  readonly b: string;
  /** Kills socat: both ends see the line drop, as when a cable is unplugged. */
  unplug(): Promise<void>;
  /** Starts socat again with the same link paths, as when the cable is plugged back in. */
  replug(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B` and waits for both links.
 * @throws LatticeTestError `TESTING_MISSING_PROGRAM` with the install command when socat is absent.
 */
export async function socatPtyPair(): Promise<PtyPair> {
  const binary = requireProgram('socat');
  const dir = await tempDir('lattice-pty-');
  const a = join(dir.path, 'A');
  const b = join(dir.path, 'B');
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    child = spawn(binary, ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    await waitFor(() => existsSync(a) && existsSync(b), { timeoutMs: 5_000, what: 'socat ptys' });
  }

  async function unplug(): Promise<void> {
    const proc = child;
    child = undefined;
    await killProcess(proc);
  }

  const stop = async (): Promise<void> => {
    await unplug();
    await dir.remove();
  };
  await start();
  return { a, b, unplug, replug: start, stop, [Symbol.asyncDispose]: stop };
}
