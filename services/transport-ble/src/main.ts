#!/usr/bin/env node
// The transport-ble service as its own process, on NATS: `node services/transport-ble/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { transportBleService } from './service.js';

await runMain(transportBleService);
