/** The lines `lattice up` prints while the store opens (a large store takes a while). */
import type { StoreOpenProgress } from '@lattice/store';

/**
 * A printer of store-open progress: the path, a tick per second while RocksDB opens, index builds
 * resumed at open (at most one line a second, and the last), and the commit it opened at.
 */
export function storeProgressPrinter(
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): (p: StoreOpenProgress) => void {
  let lastIndexLine = 0;
  return (p) => {
    if (p.phase === 'opening') {
      write(
        p.elapsedMs === 0
          ? `  … store: opening ${p.path}`
          : `  … store: still opening ${p.path} (${Math.round(p.elapsedMs / 1000)} s; RocksDB replays its log after a crash)`,
      );
    } else if (p.phase === 'index') {
      const now = Date.now();
      if (p.done < p.total && now - lastIndexLine < 1_000) return;
      lastIndexLine = now;
      const pct = p.total === 0 ? 100 : Math.floor((100 * p.done) / p.total);
      write(
        `  … store: building index ${p.collection}.${p.name}: ${p.done.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')} documents (${pct}%)`,
      );
    } else {
      write(`  … store: open at commit ${p.lastSeq} after ${p.elapsedMs} ms`);
    }
  };
}
