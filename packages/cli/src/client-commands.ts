/**
 * What `lattice dql`, `observe`, `subscribe`, `peers` and `status` do once their flags are read
 * (`main.ts` wires the flags): one call to the gateway each, printed as a table or JSON.
 */
import * as grpc from '@grpc/grpc-js';
import { v1 } from '@lattice/proto';
import {
  ClientError,
  CODECS,
  decodeItem,
  encodeArgs,
  formatExecute,
  formatObserveBatch,
  formatPresence,
  formatStatus,
  formatTable,
  GatewayClient,
  parseArgsJson,
} from './client.js';

/** Flags every client command takes. */
export interface ClientFlags {
  gateway: string;
  apiKey?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  timeout: number;
  json: boolean;
  args?: string;
}

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

/** Runs a client action: prints a failure as `lattice: CODE: message` and exits with 1. */
export async function withClient(
  flags: ClientFlags,
  action: (client: GatewayClient) => Promise<void>,
): Promise<void> {
  let client: GatewayClient | undefined;
  try {
    client = new GatewayClient({
      gateway: flags.gateway,
      apiKey: flags.apiKey,
      tlsCa: flags.tlsCa,
      tlsCert: flags.tlsCert,
      tlsKey: flags.tlsKey,
      timeoutMs: flags.timeout,
    });
    await action(client);
  } catch (err) {
    const code = err instanceof ClientError ? err.code : 'ERROR';
    process.stderr.write(`lattice: ${code}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    client?.close();
  }
}

/** Reads a server stream until `count` messages, the stream's end, or Ctrl-C. */
function readStream<T>(
  stream: grpc.ClientReadableStream<T>,
  onMessage: (m: T) => void,
  count: number | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const stop = (): void => {
      stream.cancel();
      resolve();
    };
    process.once('SIGINT', stop);
    stream.on('data', (m: T) => {
      onMessage(m);
      if (count !== undefined && ++n >= count) stop();
    });
    stream.on('end', resolve);
    stream.on('error', (err: grpc.ServiceError) => {
      process.off('SIGINT', stop);
      if (err.code === grpc.status.CANCELLED) resolve();
      else reject(new ClientError(grpc.status[err.code] ?? 'UNKNOWN', err.details || err.message));
    });
  });
}

/** `lattice dql`. */
export async function dql(
  client: GatewayClient,
  statement: string,
  flags: ClientFlags,
): Promise<void> {
  print(formatExecute(await client.execute(statement, parseArgsJson(flags.args)), flags.json));
}

/** `lattice observe`. */
export async function observe(
  client: GatewayClient,
  statement: string,
  flags: ClientFlags & { count?: number },
): Promise<void> {
  const stream = client.stream(
    'Observe',
    { statement, args: encodeArgs(parseArgsJson(flags.args)) },
    CODECS.observe,
  );
  await readStream(stream, (batch) => print(formatObserveBatch(batch, flags.json)), flags.count);
}

/** `lattice subscribe`: register `query`, and/or `--list`, or `--cancel ID`. */
export async function subscribe(
  client: GatewayClient,
  query: string | undefined,
  flags: ClientFlags & { list?: boolean; cancel?: string },
): Promise<void> {
  if (flags.cancel !== undefined) {
    const r = await client.unary('CancelSubscription', { id: flags.cancel }, CODECS.cancel);
    if (!r.cancelled) throw new ClientError('NOT_FOUND', `no subscription ${flags.cancel}`);
    print(flags.json ? '{"cancelled":true}' : `cancelled ${flags.cancel}`);
    return;
  }
  if (query !== undefined) {
    const r = await client.unary(
      'RegisterSubscription',
      { statement: query, args: encodeArgs(parseArgsJson(flags.args)) },
      CODECS.register,
    );
    const id = r.subscription?.id ?? '';
    print(flags.json ? JSON.stringify({ id }) : `subscribed ${id}`);
    if (!flags.list) return;
  }
  if (!flags.list && query === undefined) {
    throw new ClientError('BAD_ARGS', 'give a query, --list or --cancel <id>');
  }
  const list = await client.unary('ListSubscriptions', {}, CODECS.list);
  const rows = list.subscriptions.map((s) => ({
    id: s.id,
    statement: s.statement,
    args: decodeItem(s.args) ?? {},
  }));
  print(flags.json ? JSON.stringify(rows) : formatTable(rows, 80));
}

/** `lattice peers`: the mesh graph once, or each time it changes with `--watch`. */
export async function peers(
  client: GatewayClient,
  flags: ClientFlags & { watch?: boolean },
): Promise<void> {
  const stream = client.stream('Presence', {}, CODECS.presence);
  await readStream(
    stream,
    (m) => {
      const presence = v1.MuxPresence.create(m.presence ?? {});
      print(
        flags.json
          ? JSON.stringify(v1.MuxPresence.toObject(presence, { longs: Number }))
          : formatPresence(presence),
      );
    },
    flags.watch ? undefined : 1,
  );
}

/** `lattice status`. */
export async function status(client: GatewayClient, flags: ClientFlags): Promise<void> {
  const s = await client.unary('SyncStatus', {}, CODECS.syncStatus);
  print(
    flags.json
      ? JSON.stringify(v1.SyncStatusResponse.toObject(s, { longs: Number }))
      : formatStatus(s),
  );
}
