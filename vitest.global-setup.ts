import type { TestProject } from 'vitest/node';
import { startNatsServer, type NatsServer } from '@lattice/testing';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the nats-server every integration test shares; each test uses its own namespace. */
    natsUrl: string;
  }
}

let server: NatsServer | undefined;

/** Starts one real nats-server (JetStream on, random port) for the whole run. */
export async function setup(project: TestProject): Promise<void> {
  server = await startNatsServer({ jetstream: true });
  project.provide('natsUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
