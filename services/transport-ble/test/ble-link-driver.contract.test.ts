import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';
import { bleHarness } from './harness.js';

// Noble (central) and bleno (peripheral) over one fake air: real library code above the binding.
runLinkDriverContractTests('BleLinkDriver, MTU 185, 200 KB/s fake radio', () =>
  bleHarness({ mtu: 185, bytesPerS: 200_000 }, { bandwidthBytesPerS: 200_000 }),
);
runLinkDriverContractTests('BleLinkDriver, MTU 23, 20 KB/s fake radio', () =>
  bleHarness({ mtu: 23, bytesPerS: 20_000 }, { bandwidthBytesPerS: 20_000 }),
);
