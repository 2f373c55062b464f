#!/usr/bin/env node
// The store service as its own process, on NATS: `node services/store/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { storeService } from './service.js';

await runMain(storeService);
