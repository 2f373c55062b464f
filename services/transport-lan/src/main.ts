#!/usr/bin/env node
// The transport-lan service as its own process, on NATS: `node services/transport-lan/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { transportLanService } from './service.js';

await runMain(transportLanService);
