#!/usr/bin/env node
// The merge service as its own process, on NATS: `node services/merge/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { mergeService } from './service.js';

await runMain(mergeService);
