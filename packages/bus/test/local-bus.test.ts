import { LocalBus } from '@lattice/bus';
import { runBusContractTests } from '@lattice/bus/testing';

runBusContractTests('LocalBus', async () => {
  const bus = new LocalBus();
  return { a: bus, b: bus, close: () => bus.close() };
});
