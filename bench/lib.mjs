// Small helpers the bench scripts share.
import { createServer } from 'node:net';

/** A free TCP port on loopback, for the servers a bench starts itself. */
export const freePort = () =>
  new Promise((r) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
