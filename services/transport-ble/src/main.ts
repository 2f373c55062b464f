#!/usr/bin/env node
// The transport-ble service as its own process, on NATS: `node services/transport-ble/dist/main.js --nats-url …`.
// The real noble and bleno (platform bindings, loaded on first use) are picked here.
import { runMain } from '@lattice/service';
import { createTransportBleService } from './service.js';
import { defaultStackLoaders } from './stacks.js';

await runMain(createTransportBleService(defaultStackLoaders));
