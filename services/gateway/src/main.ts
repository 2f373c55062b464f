#!/usr/bin/env node
// The gateway service as its own process, on NATS: `node services/gateway/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { gatewayService } from './service.js';

await runMain(gatewayService);
