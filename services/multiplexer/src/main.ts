#!/usr/bin/env node
// The multiplexer service as its own process, on NATS: `node services/multiplexer/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { multiplexerService } from './service.js';

await runMain(multiplexerService);
