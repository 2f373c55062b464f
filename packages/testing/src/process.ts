import type { ChildProcess } from 'node:child_process';

/** Sends `signal` to a child (SIGKILL by default) and resolves once it has exited; a no-op if it already has. */
export async function killProcess(
  proc: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<void> {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  const escalate = signal === 'SIGKILL' ? undefined : setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(escalate);
}
