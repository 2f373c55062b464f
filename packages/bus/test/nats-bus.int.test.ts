import { inject } from 'vitest';
import { NatsBus } from '@lattice/bus';
import { runBusContractTests } from '@lattice/bus/testing';

// Two clients of the suite's real nats-server: one publishes/requests, the other subscribes/serves.
runBusContractTests('NatsBus', async () => {
  const url = inject('natsUrl');
  const a = await NatsBus.connect({ servers: url, name: 'contract-a' });
  const b = await NatsBus.connect({ servers: url, name: 'contract-b' });
  return {
    a,
    b,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
});
