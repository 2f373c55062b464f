import { runLinkDriverContractTests } from '@lattice/multiplexer/testing';
import { LanLinkDriver } from '../src/index.js';
import { TcpProxy, untilEvent } from './helpers.js';

// Two LAN drivers on loopback TCP (random ports); `a` dials `b` through a proxy, which cuts the
// connection from outside for the "cut link" case (a's redial then brings up a new link id).
runLinkDriverContractTests('LanLinkDriver over loopback TCP', async () => {
  const a = await LanLinkDriver.start({ port: 0, host: '127.0.0.1' });
  const b = await LanLinkDriver.start({ port: 0, host: '127.0.0.1' });
  let proxy: TcpProxy | undefined;
  return {
    a,
    b,
    open: async () => {
      proxy = await TcpProxy.start(b.port ?? 0);
      a.addPeer({ host: '127.0.0.1', port: proxy.port });
    },
    cut: async () => proxy?.cut(),
    waitFor: (condition, what) => untilEvent([a, b], condition, what),
    close: async () => {
      await a.close();
      await b.close();
      await proxy?.close();
    },
  };
});
