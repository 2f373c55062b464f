#!/usr/bin/env node
// The transport-usb service as its own process, on NATS: `node services/transport-usb/dist/main.js --nats-url …`.
import { runMain } from '@lattice/service';
import { transportUsbService } from './service.js';

await runMain(transportUsbService);
